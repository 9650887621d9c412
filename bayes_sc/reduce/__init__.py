"""Reduction (``bayes-sc reduce``): detector frames → Poisson-exact polar bins; FLIM PTU →
histograms; PL spectra copied. Writes ``reduced.h5`` (SPEC §4.1) under a temporary name and
renames it at the end, so an error or Ctrl-C leaves no partial file.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..errors import InputError
from ..io.eiger import open_xray, validate_frame_count
from ..io.eiger_fast import FrameReader
from ..io.h5util import atomic_path, check_output
from ..io.irf import read_irf
from ..io.manifest import Manifest, read_manifest
from ..io.pl_spectra import read_pl_spectra
from ..io.ptu import read_flim_image
from ..provenance import input_files, step_provenance
from .bins import SAXS, WAXS, BinMap, build_bin_map, peak_regions
from .frames import Binner, reduce_frames

__all__ = ["reduce_dataset", "BinMap", "build_bin_map"]
log = logging.getLogger(__name__)
ROW_BLOCK = 32  # frames written to HDF5 at a time


def reduce_dataset(manifest, out_path, *, workers: int = 2, progress: bool = True) -> dict:
    """Reduce every modality of a supercrystal's dataset into ``out_path`` (``reduced.h5``).

    Parameters
    ----------
    manifest
        Path of ``supercrystal.toml`` (or a read :class:`Manifest`).
    out_path
        The ``reduced.h5`` to write; never one of the inputs.
    workers
        Threads decompressing and binning frames.
    progress
        Show a progress bar over frames.

    Returns
    -------
    dict
        Summary: bins, frames, binned totals, excluded pixels, timings.
    """
    man = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    out_path = Path(out_path)
    _refuse_overwriting_inputs(man, out_path)
    summary: dict = {"name": man.name, "output": str(out_path)}
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(
            name=man.name,
            material=man.material,
            manifest=str(man.path),
            bayes_sc_version=__version__,
        )
        if man.xray is not None:
            summary["xray"] = _reduce_xray(man, h5.create_group("xray"), workers, progress)
        if man.flim is not None:
            summary["flim"] = _reduce_flim(man, h5.create_group("flim"))
        if man.pl is not None:
            summary["pl"] = _reduce_pl(man, h5.create_group("pl"))
        # inputs' hashes (batch resumes on them), once the readers have vouched for the files
        h5.attrs.update(step_provenance([man.path], {}))
    return summary


def _refuse_overwriting_inputs(man: Manifest, out: Path) -> None:
    """Refuse, before any work, an output that is a folder or one of the dataset's files (the
    manifest, the files it names, the EIGER data files their masters link to)."""
    check_output(out, input_files(man.path))


def _reduce_xray(man: Manifest, g: h5py.Group, workers: int, progress: bool) -> dict:
    xm = man.xray
    t0 = time.perf_counter()
    with open_xray(xm.master, xm.overrides) as frames:
        validate_frame_count(frames, xm.scan_shape, man.path)
        geom = frames.geometry
        bins = _bin_map(man, frames)
        binner = Binner(bins.pixel_bin, bins.n_bins, frames.saturation_value)
        g.attrs.update(geom.as_dict())
        g.attrs.update(
            scan_shape=xm.scan_shape, step_um=xm.step_um,
            count_time_s=frames.count_time_s or np.nan,
            saturation_value=frames.saturation_value, bit_depth=frames.bit_depth,
            n_masked_pixels=frames.n_masked_pixels, source=str(xm.master),
        )  # fmt: skip
        g["pixel_bin"] = bins.pixel_bin
        for name, arr in bins.bin_arrays().items():
            g[name] = arr
        n, nb = frames.n_frames, bins.n_bins
        counts = g.create_dataset("counts", (n, nb), np.uint32, chunks=(min(ROW_BLOCK, n), nb))
        counts.attrs["unit"] = "counts"
        t_frames = time.perf_counter()
        frame_excluded = np.zeros(n, bool)
        excluded = []
        block, start = [], 0
        with FrameReader(frames) as reader:
            results = reduce_frames(reader.read_chunk, binner, range(n), workers=workers)
            if progress:
                results = tqdm(results, total=n, desc="reduce X-ray frames", unit="frame")
            for res in results:
                block.append(res.counts)
                frame_excluded[res.index] = res.frame_excluded
                if res.excluded.size:
                    rc = np.unravel_index(res.excluded, frames.frame_shape)
                    excluded.append(np.column_stack([np.full(res.excluded.size, res.index), *rc]))
                if len(block) == ROW_BLOCK or res.index == n - 1:
                    counts[start : start + len(block)] = np.stack(block)
                    start += len(block)
                    block = []
        t_frames = time.perf_counter() - t_frames
        exc = np.concatenate(excluded).astype(np.int32) if excluded else np.empty((0, 3), np.int32)
        if frame_excluded.all():
            raise InputError(
                xm.master, f"all {n} frames are invalid: every binned pixel of every frame is "
                "saturated or masked (no X-ray data to reduce)",
            )  # fmt: skip
        g["excluded"] = exc
        g["frame_excluded"] = frame_excluded
        binned_total = int(
            sum(int(counts[i : i + ROW_BLOCK].sum(dtype=np.uint64)) for i in range(0, n, ROW_BLOCK))
        )
    out = {
        "n_frames": n, "n_bins": nb, "n_pixels_binned": binner.n_used,
        "binned_counts": binned_total, "excluded_pixels": int(exc.shape[0]),
        "frames_excluded": int(frame_excluded.sum()), "seconds": time.perf_counter() - t0,
        "frames_per_s": n / t_frames,
    }  # fmt: skip
    if xm.background is not None:
        out["background_counts"] = _reduce_background(
            xm, geom, frames.frame_shape, binner, g, workers
        )
    return out


def _bin_map(man: Manifest, frames) -> BinMap:
    """The bin map of a scan, with errors that name the file and say what to check.

    Refused before any frame is read: every detector pixel masked; a wavelength too long to
    reach the preset's WAXS reflections at any angle (q <= 4π/λ), which is what a wavelength
    given in Å where nm is wanted gives; no unmasked pixel in the SAXS region (e.g. a distance
    given in m where mm is wanted). A WAXS region off the detector is only logged.
    """
    xm = man.xray
    if frames.pixel_mask.all():
        raise InputError(
            xm.master, f"every detector pixel is masked (detectorSpecific/pixel_mask, "
            f"{frames.n_masked_pixels} pixels): no X-ray data",
        )  # fmt: skip
    g = frames.geometry
    where = man.path if any(k != "poni" for k in xm.overrides) else xm.master
    units = (
        f"wavelength_nm = {g.wavelength_nm:g}, distance_mm = {g.distance_mm:g}, "
        f"pixel_size_mm = {g.pixel_size_mm:g}"
    )
    hint = "check the geometry's units (wavelength in nm, distance and pixel size in mm)"
    q_far = float(np.max(_waxs_q(man.preset)))
    if 4 * np.pi / g.wavelength_nm <= q_far:
        raise InputError(
            where, f"wavelength_nm = {g.wavelength_nm:g} cannot reach the WAXS reflections at "
            f"any angle (q up to {q_far:.3g} nm^-1 needs a wavelength below "
            f"{4 * np.pi / q_far:.3g} nm): {hint}",
        )  # fmt: skip
    try:
        bins = build_bin_map(g, frames.frame_shape, frames.pixel_mask, man.preset)
    except InputError as exc:
        if exc.path is not None:
            raise
        raise InputError(where, f"{exc.problem} with {units}: {hint}") from None
    for kind, label in ((SAXS, "SAXS"), (WAXS, "WAXS")):
        if not np.any(bins.region == kind):
            regions = [r for r in peak_regions(man.preset) if r[0] == kind]
            lo, hi = min(r[1] for r in regions), max(r[2] for r in regions)
            problem = (
                f"no unmasked detector pixel sees the {label} peaks (q {lo:.3g}-{hi:.3g} "
                f"nm^-1) with {units}"
            )
            if kind == SAXS:
                raise InputError(where, f"{problem}: {hint}")
            log.warning("%s: %s; the X-ray model needs them", where, problem)
    return bins


def _waxs_q(preset: dict) -> np.ndarray:
    """Smallest possible q [nm⁻¹] of each WAXS reflection of the preset (largest a_AL)."""
    from ..physics import waxs_reflections

    a_hi = float(preset["priors"]["a_AL"]["range"][1])
    return np.asarray(waxs_reflections(a_hi, 0.0, preset["xray"]["waxs_reflections"])[0])


def _reduce_background(xm, geom, shape, binner: Binner, g: h5py.Group, workers: int) -> int:
    """Bare-substrate frames through the same bin map (the scan's geometry)."""
    with open_xray(xm.background, geom.as_dict()) as bg:
        if bg.frame_shape != tuple(shape):
            raise InputError(
                xm.background, f"background frames are {bg.frame_shape}, the scan's {tuple(shape)}"
            )
        total = np.zeros(binner.n_bins, np.uint64)
        n_exc = 0
        with FrameReader(bg) as reader:
            for res in reduce_frames(
                reader.read_chunk, binner, range(bg.n_frames), workers=workers
            ):
                total += res.counts
                n_exc += res.excluded.size
        g["background_counts"] = total.astype(np.uint32)
        g.attrs["background_exposure_s"] = bg.n_frames * (
            bg.count_time_s or g.attrs["count_time_s"]
        )
        g.attrs["background_frames"] = bg.n_frames
        g.attrs["background_excluded_pixels"] = n_exc
        g.attrs["background_source"] = str(xm.background)
    return int(total.sum())


def _reduce_flim(man: Manifest, g: h5py.Group) -> dict:
    fm = man.flim
    img = read_flim_image(fm.ptu, channel=fm.channel, pixel_um=fm.pixel_um)
    g.create_dataset(
        "counts", data=img.counts, compression="gzip", compression_opts=1, shuffle=True
    )
    g.attrs.update(
        bin_ps=img.bin_ps, period_ns=img.period_ns, channel=img.channel, photons=img.photons,
        pixel_um=img.pixel_um if img.pixel_um is not None else np.nan, source=str(fm.ptu),
    )  # fmt: skip
    if fm.irf is not None:
        irf = read_irf(fm.irf, expect_bin_ps=img.bin_ps, expect_period_ns=img.period_ns)
        g["irf"] = irf.counts
        g.attrs["irf_source"] = str(fm.irf)
    else:
        g.attrs["irf_source"] = "none: the IRF is modelled"
    return {"shape": list(img.counts.shape[:2]), "n_bins": img.n_bins, "photons": img.photons}


def _reduce_pl(man: Manifest, g: h5py.Group) -> dict:
    pl = read_pl_spectra(man.pl.spectra)
    for name in ("wavelength_nm", "counts", "x_um", "y_um"):
        g[name] = getattr(pl, name)
    if pl.outline_um is not None:
        g["outline_um"] = pl.outline_um
    g.attrs["source"] = str(man.pl.spectra)
    return {"n_points": pl.n_points, "n_channels": int(pl.wavelength_nm.size)}
