"""What one supercrystal dataset holds (``bayes-sc info``, SPEC §4.1), validated as it is read.

:func:`dataset_info` opens every file the manifest names, checks them against each other (frame
count against ``scan_shape``, background frame shape, IRF bin width and period against the FLIM
image) and returns a JSON-safe summary; :func:`format_info` renders it as readable text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .eiger import open_xray, validate_frame_count
from .irf import read_irf
from .manifest import Manifest, read_manifest
from .pl_spectra import read_pl_spectra
from .ptu import read_flim_image

__all__ = ["dataset_info", "format_info"]


def dataset_info(manifest: str | Path | Manifest) -> dict:
    """Summarise and validate the dataset a ``supercrystal.toml`` describes.

    Parameters
    ----------
    manifest
        Path of the manifest, or a manifest already read with
        :func:`~bayes_sc.io.manifest.read_manifest`.

    Returns
    -------
    dict
        JSON-safe (Python ``int``/``float``/``str``/``list``/``None`` only), with the keys of
        SPEC §4.1: ``name``, ``material`` and, for each modality the manifest has,

        - ``xray``: ``n_frames``, ``frame_shape`` [rows, cols], ``dtype``, ``bit_depth``,
          ``beam_center_x``, ``beam_center_y`` [pixel], ``distance_mm`` [mm],
          ``wavelength_nm`` [nm], ``pixel_size_mm`` [mm] (geometry after the manifest's
          overrides), ``n_masked_pixels``, ``scan_shape`` [ny, nx], ``step_um`` [dy, dx] [µm],
          ``n_background_frames`` (0 without a background), ``count_time_s`` [s] (or None);
        - ``flim``: ``shape`` [ny, nx], ``n_bins``, ``bin_ps`` [ps], ``period_ns`` [ns],
          ``photons``, ``irf_bins`` (None without a measured IRF: it is then modelled),
          ``channel``, ``pixel_um`` [µm] (or None);
        - ``pl``: ``n_points``, ``n_channels``, ``wavelength_nm`` [min, max] [nm].

    Raises
    ------
    InputError
        Anything wrong with the manifest or the files it names: unreadable or truncated files,
        dangling links, missing geometry, a frame count that does not fill ``scan_shape``, a
        background whose frames differ in shape, a FLIM file that is not an image scan, an IRF
        whose bin width or period differs from the image's, malformed PL spectra.
    """
    m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    info: dict = {"name": m.name, "material": m.material}
    if m.xray is not None:
        info["xray"] = _xray_info(m)
    if m.flim is not None:
        info["flim"] = _flim_info(m)
    if m.pl is not None:
        info["pl"] = _pl_info(m)
    return _plain(info)


def _xray_info(m: Manifest) -> dict:
    x = m.xray
    with open_xray(x.master, x.overrides) as frames:
        try:
            validate_frame_count(frames, x.scan_shape, m.path)
        except InputError as exc:
            raise InputError(
                m.path, f"key 'xray.scan_shape': {exc.problem} (in {x.master})"
            ) from None
        frames.frame(0)  # the first and last data files must decompress
        frames.frame(frames.n_frames - 1)
        g = frames.geometry
        out = {
            "n_frames": frames.n_frames,
            "frame_shape": list(frames.frame_shape),
            "dtype": np.dtype(frames.dtype).name,
            "bit_depth": frames.bit_depth,
            **{k: float(v) for k, v in g.as_dict().items()},
            "n_masked_pixels": frames.n_masked_pixels,
            "scan_shape": list(x.scan_shape),
            "step_um": list(x.step_um),
            "n_background_frames": 0,
            "count_time_s": frames.count_time_s,
        }
        shape = frames.frame_shape
    if x.background is not None:
        out["n_background_frames"] = _background_frames(x.background, g.as_dict(), shape)
    return out


def _background_frames(path: Path, geometry: dict, shape: tuple[int, int]) -> int:
    """Frames of the background file, all read once to prove they are readable."""
    with open_xray(path, geometry) as bg:  # the scan's geometry: the background needs none
        if bg.frame_shape != shape:
            raise InputError(
                path,
                f"background frames have shape {list(bg.frame_shape)}, the scan's frames "
                f"{list(shape)}",
            )
        for _ in bg.iter_frames():
            pass
        return bg.n_frames


def _flim_info(m: Manifest) -> dict:
    f = m.flim
    image = read_flim_image(f.ptu, channel=f.channel, pixel_um=f.pixel_um)
    irf_bins = None
    if f.irf is not None:
        irf = read_irf(f.irf, expect_bin_ps=image.bin_ps, expect_period_ns=image.period_ns)
        irf_bins = int(irf.counts.size)
    ny, nx = image.counts.shape[:2]
    return {
        "shape": [ny, nx],
        "n_bins": image.n_bins,
        "bin_ps": image.bin_ps,
        "period_ns": image.period_ns,
        "photons": image.photons,
        "irf_bins": irf_bins,
        "channel": image.channel,
        "pixel_um": image.pixel_um,
    }


def _pl_info(m: Manifest) -> dict:
    s = read_pl_spectra(m.pl.spectra)
    lam = s.wavelength_nm
    return {
        "n_points": s.n_points,
        "n_channels": int(lam.size),
        "wavelength_nm": [float(lam.min()), float(lam.max())],
    }


def _plain(value):
    """``value`` with numpy scalars and tuples turned into Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _num(value, unit: str = "") -> str:
    if value is None:
        return "?"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".rstrip()


def format_info(info: dict) -> str:
    """Render :func:`dataset_info`'s summary as readable multi-line text.

    Parameters
    ----------
    info
        The dictionary returned by :func:`dataset_info`.

    Returns
    -------
    str
        One block per modality, without a trailing newline.
    """
    lines = [f"supercrystal {info.get('name')!s}  (material: {info.get('material')})"]
    x = info.get("xray")
    if x is not None:
        rows, cols = x["frame_shape"]
        ny, nx = x["scan_shape"]
        dy, dx = x["step_um"]
        exposure = "" if x.get("count_time_s") is None else f", {_num(x['count_time_s'], 's')}"
        bg = x["n_background_frames"]
        lines += [
            "X-ray",
            f"  frames      {x['n_frames']} of {rows} x {cols} px, {x['dtype']} "
            f"(bit depth {x['bit_depth']}){exposure}",
            f"  scan        {ny} x {nx} points, step {dy:g} x {dx:g} µm",
            f"  beam centre x = {x['beam_center_x']:g}, y = {x['beam_center_y']:g} px",
            f"  detector    distance {x['distance_mm']:g} mm, pixel {x['pixel_size_mm']:g} mm",
            f"  wavelength  {x['wavelength_nm']:g} nm",
            f"  mask        {x['n_masked_pixels']} masked pixels",
            f"  background  {f'{bg} frame(s)' if bg else 'none'}",
        ]
    f = info.get("flim")
    if f is not None:
        ny, nx = f["shape"]
        irf = f["irf_bins"]
        irf_text = "modelled (none given)" if irf is None else f"measured, {irf} bins"
        pixel = "" if f.get("pixel_um") is None else f" of {_num(f['pixel_um'], 'µm')}"
        lines += [
            "FLIM",
            f"  image       {ny} x {nx} px{pixel}, detector channel {f.get('channel', '?')}",
            f"  histogram   {f['n_bins']} bins of {f['bin_ps']:g} ps, "
            f"laser period {f['period_ns']:g} ns",
            f"  photons     {f['photons']}",
            f"  IRF         {irf_text}",
        ]
    p = info.get("pl")
    if p is not None:
        lo, hi = p["wavelength_nm"]
        lines += [
            "PL",
            f"  spectra     {p['n_points']} points x {p['n_channels']} channels, {lo:g}-{hi:g} nm",
        ]
    return "\n".join(lines)
