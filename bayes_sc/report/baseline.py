"""The paper's least-squares maps at a posterior's pixels, for the profiles' comparison points.

X-ray: :func:`bayes_sc.baseline.baseline_xray` on the scan of ``reduced.h5`` (with the
posterior's material preset); FLIM: the per-pixel least-squares reconvolution fit
(:func:`bayes_sc.baseline.flim.fit_pixels` with ``loss="ls"``) on the image binned as the fit
binned it.
Each map is read at the posterior's ``<m>_row, <m>_col``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError

log = logging.getLogger(__name__)


def _at_pixels(maps: dict, post: xr.Dataset, prefix: str, names) -> dict:
    rows = np.asarray(post[f"{prefix}_row"].values, int)
    cols = np.asarray(post[f"{prefix}_col"].values, int)
    out = {}
    for name in names:
        grid = maps.get(name)
        if grid is None or np.ndim(grid) != 2:
            continue
        ok = (rows < grid.shape[0]) & (cols < grid.shape[1])
        values = np.full(rows.size, np.nan)
        values[ok] = np.asarray(grid, float)[rows[ok], cols[ok]]
        out[name] = values
    return out


def xray_baseline(reduced: Path, post: xr.Dataset, material: str | None) -> dict:
    """Per-pixel least-squares values of the X-ray maps at the posterior's pixels."""
    from ..baseline import baseline_xray
    from ..modeling.xray_data import load_xray
    from ..presets import load_preset

    data = load_xray(reduced)
    maps = baseline_xray(data, load_preset(material or "cspbbr2cl"))
    names = ("a1", "a2", "a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")
    return _at_pixels(maps, post, "xray", names)


def flim_baseline(reduced: Path, post: xr.Dataset, bin_pixels: int = 1) -> dict:
    """Per-pixel least-squares τ [ns] at the posterior's (binned) image pixels."""
    from ..baseline.flim import fit_pixels
    from ..modeling.flim_data import load_flim

    data = load_flim(reduced, bin_pixels=int(bin_pixels))
    # As baseline_flim (the paper's reconvolution fit), gridded here: its returned dict's
    # per-pixel "tau" replaces the gridded one.
    res = fit_pixels(data, loss="ls")
    grid = np.full(data.crystal_mask.shape, np.nan)
    grid[data.graph.rows, data.graph.cols] = np.where(res["ok"], res["tau"], np.nan)
    return _at_pixels({"tau": grid}, post, "flim", ("tau",))


def least_squares(reduced, tree: xr.DataTree, post: xr.Dataset) -> tuple[dict, list[str]]:
    """Baseline values per modality present in ``post`` ({prefix: {variable: (n,)}}) and notes.

    A baseline that cannot be computed (the reduced file lacks the modality, a fit fails) is
    left out with a note; it never stops the report.
    """
    reduced = Path(reduced)
    out, notes = {}, []
    jobs = []
    if "xray_pixel" in post.dims and "xray_row" in post.coords:
        jobs.append(("xray", lambda: xray_baseline(reduced, post, tree.attrs.get("material"))))
    if "flim_pixel" in post.dims and "flim_row" in post.coords:
        bp = tree.attrs.get("bin_pixels", 1)
        jobs.append(("flim", lambda: flim_baseline(reduced, post, bp)))
    for prefix, job in jobs:
        try:
            out[prefix] = job()
            log.info("least-squares baseline (%s): %d maps", prefix, len(out[prefix]))
        except (InputError, OSError, KeyError, ValueError) as err:
            notes.append(f"no least-squares {prefix} baseline from {reduced.name}: {err}")
            log.warning("%s", notes[-1])
    return out, notes
