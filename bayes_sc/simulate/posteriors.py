"""Calibrated synthetic posteriors, for testing what comes after ``fit`` (regress, report).

A full fit of one crystal takes minutes; checking the regression's coverage needs dozens of
crystals. So this module writes posteriors with the SPEC §7 layout whose every marginal is,
by construction, calibrated against the simulator's truth: for a true value θ and a posterior
sd s, the posterior mean is θ + s·ε and the draws are mean + s·η (ε, η standard normal). The
truth follows the same fields and optical law as :mod:`bayes_sc.simulate` (the preset's
``[simulate.*]`` tables), so a regression on these posteriors must recover the law's β.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import xarray as xr

from ..physics import edge_distance_grid, edge_distance_points
from .fields import crystal_outline, grid_mask, structural_profiles
from .optics import law_coefficients, law_response, pl_points

#: Posterior sds of the synthetic fields [their units]: like the X-ray model's on a paper scan.
XRAY_SD = {"a_mean": 0.01, "delta_psi": 1.5, "g_q": 0.15}
#: Pixel-to-pixel scatter of the true fields about their profiles (as in simulate.fields).
XRAY_SCATTER = {"a_mean": 0.08, "delta_psi": 0.8, "g_q": 0.08}
TAU_SD_NS = 0.04
E_PEAK_SD_EV = 0.0012


def _tree(ds: xr.Dataset, crystal: str, model: str, const=None) -> xr.DataTree:
    """A posterior file's tree; ``const``: its per-pixel likelihood summaries (as ``fit``'s)."""
    groups = {"posterior": ds} | ({} if const is None else {"constant_data": const})
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(crystal=crystal, model=model, synthetic="calibrated draws from truth")
    return tree


def _draws(truth, sd, rng, n_chains, n_draws):
    """(chain, draw, n) draws of a calibrated posterior of ``truth`` (n,) with sds ``sd``."""
    mean = truth + sd * rng.standard_normal(truth.shape)
    return mean + sd * rng.standard_normal((n_chains, n_draws) + truth.shape)


def synthetic_crystal(
    outdir,
    preset: dict,
    rng,
    *,
    name="SC",
    scan=(25, 25),
    chains=2,
    draws=500,
) -> dict:
    """Write X-ray, FLIM and PL posteriors of one synthetic crystal under ``outdir``.

    Returns {"xray", "flim", "pl": paths, "beta": the law's β {response: {covariate: β}}}.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sim = preset["simulate"]
    xcfg, fcfg, pcfg, law = sim["xray"], sim["flim"], sim["pl"], sim["law"]
    ny, nx = scan
    step = float(xcfg["step_um"])
    extent = np.array([nx * step, ny * step])
    outline = crystal_outline((extent - step) / 2, 0.36 * extent, rng)
    mask = grid_mask(outline, (ny, nx), (step, step))
    edge = edge_distance_grid(mask, (step, step))[mask]
    rows, cols = np.nonzero(mask)
    prof = structural_profiles(edge, xcfg)
    coords = {
        "xray_row": ("xray_pixel", rows),
        "xray_col": ("xray_pixel", cols),
        "xray_x_um": ("xray_pixel", cols * step),
        "xray_y_um": ("xray_pixel", rows * step),
        "xray_edge_um": ("xray_pixel", edge),
    }
    data = {}
    for c, sd in XRAY_SD.items():
        truth = prof[c] + XRAY_SCATTER[c] * rng.standard_normal(edge.shape)
        data[c] = (("chain", "draw", "xray_pixel"), _draws(truth, sd, rng, chains, draws))
    paths = {"xray": outdir / "xray.nc"}
    _tree(xr.Dataset(data, coords=coords), name, "xray").to_netcdf(paths["xray"])
    # Optical crystal (another one, on glass) over the same area.
    pixel_um = float(fcfg["pixel_um"])
    fshape = (math.ceil(extent[1] / pixel_um), math.ceil(extent[0] / pixel_um))
    f_extent = np.array([fshape[1], fshape[0]]) * pixel_um
    f_outline = crystal_outline((f_extent - pixel_um) / 2, 0.36 * f_extent, rng)
    f_mask = grid_mask(f_outline, fshape, (pixel_um, pixel_um))
    f_edge = edge_distance_grid(f_mask, (pixel_um, pixel_um))[f_mask]
    fr, fc = np.nonzero(f_mask)
    d_tau, _ = law_response(f_edge, xcfg, law, "tau", rng)
    tau = _draws(law["tau_centre_ns"] + d_tau, TAU_SD_NS, rng, chains, draws)
    fcoords = {
        "flim_row": ("flim_pixel", fr),
        "flim_col": ("flim_pixel", fc),
        "flim_x_um": ("flim_pixel", fc * pixel_um),
        "flim_y_um": ("flim_pixel", fr * pixel_um),
        "flim_edge_um": ("flim_pixel", f_edge),
    }
    paths["flim"] = outdir / "flim.nc"
    ds = xr.Dataset({"tau": (("chain", "draw", "flim_pixel"), tau)}, coords=fcoords)
    # independent calibrated draws: each pixel's own estimate is its draws' mean
    const = xr.Dataset({"tau_ml": ("flim_pixel", tau.mean((0, 1))),
                        "tau_ml_se": ("flim_pixel", np.full(fr.size, TAU_SD_NS))})  # fmt: skip
    _tree(ds, name, "flim", const).to_netcdf(paths["flim"])
    x, y = pl_points(f_outline, pcfg["point_spacing_um"], rng)
    p_edge = edge_distance_points(x, y, f_outline)
    shift, _ = law_response(p_edge, xcfg, law, "blueshift", rng)
    e_peak = _draws(law["E_centre_ev"] + shift / 1000.0, E_PEAK_SD_EV, rng, chains, draws)
    inner = p_edge >= np.quantile(p_edge, 0.75)  # SPEC §5
    blue = 1000.0 * (e_peak - e_peak[..., inner].mean(-1, keepdims=True))
    pcoords = {
        "pl_x_um": ("pl_point", x),
        "pl_y_um": ("pl_point", y),
        "pl_edge_um": ("pl_point", p_edge),
    }
    dims = ("chain", "draw", "pl_point")
    paths["pl"] = outdir / "pl.nc"
    ds = xr.Dataset({"E_peak": (dims, e_peak), "blueshift": (dims, blue)}, coords=pcoords)
    const = xr.Dataset({"E_peak_ml": ("pl_point", e_peak.mean((0, 1))),
                        "E_peak_ml_se": ("pl_point", np.full(x.size, E_PEAK_SD_EV))})  # fmt: skip
    _tree(ds, name, "pl", const).to_netcdf(paths["pl"])
    return paths | {"beta": law_coefficients(law)}
