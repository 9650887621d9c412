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
from ..io.h5util import atomic_path
from ..io.irf import read_irf
from ..io.manifest import Manifest, read_manifest
from ..io.pl_spectra import read_pl_spectra
from ..io.ptu import read_flim_image
from ..provenance import step_provenance
from .bins import BinMap, build_bin_map
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
        h5.attrs.update(step_provenance([man.path], {}))  # inputs' hashes: batch resumes on them
        if man.xray is not None:
            summary["xray"] = _reduce_xray(man, h5.create_group("xray"), workers, progress)
        if man.flim is not None:
            summary["flim"] = _reduce_flim(man, h5.create_group("flim"))
        if man.pl is not None:
            summary["pl"] = _reduce_pl(man, h5.create_group("pl"))
    return summary


def _refuse_overwriting_inputs(man: Manifest, out: Path) -> None:
    inputs = [man.path]
    for part in (man.xray, man.flim, man.pl):
        if part is not None:
            inputs += [v for v in vars(part).values() if isinstance(v, Path)]
    if out.exists() and any(out.resolve() == p.resolve() for p in inputs):
        raise InputError(out, "the output would overwrite an input file; choose another name")


def _reduce_xray(man: Manifest, g: h5py.Group, workers: int, progress: bool) -> dict:
    xm = man.xray
    t0 = time.perf_counter()
    with open_xray(xm.master, xm.overrides) as frames:
        validate_frame_count(frames, xm.scan_shape, man.path)
        geom = frames.geometry
        bins = build_bin_map(geom, frames.frame_shape, frames.pixel_mask, man.preset)
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
