"""``bayes-sc fit --model joint``: one crystal's X-ray, FLIM and PL data and the regression in
one posterior (:mod:`bayes_sc.modeling.joint`; SPEC §7 names on every modality's dim)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import xarray as xr

from ..errors import InputError
from ..presets import load_regression_settings
from .sample import enable_parallel_chains, sample

log = logging.getLogger(__name__)
JOINT_TARGET_ACCEPT = 0.95


def fit_joint(
    reduced: Path, preset: dict, *, sampler="numpyro", chains=2, draws=2000, tune=1000, seed=0,
    progress=True, posterior_predictive=False, likelihood="summary", crop=None, bin_pixels=1,
    merge=None, settings_path=None, target_accept=None,
) -> xr.DataTree:  # fmt: skip
    """Sample the joint model of one crystal and return the DataTree.

    Parameters
    ----------
    reduced
        reduced.h5 with ``/xray`` and ``/flim`` and/or ``/pl``.
    preset
        Material preset.
    likelihood, crop
        X-ray likelihood and crop, as :func:`bayes_sc.inference.fit.fit_xray`.
    bin_pixels, merge
        FLIM spatial binning and time-bin merging, as
        :func:`bayes_sc.inference.fit_flim.fit_flim`.
    settings_path
        Regression settings (default ``models/regression.toml``).
    target_accept
        NUTS target acceptance (default ``JOINT_TARGET_ACCEPT``, 0.95).
    Other parameters as :func:`bayes_sc.inference.sample.sample`.
    """
    from ..modeling.flim import PIX as FLIM_PIX
    from ..modeling.joint import build_joint_model
    from ..modeling.pl import PT, e_peak_centred, first_estimates
    from ..modeling.pl_data import load_pl
    from ..modeling.xray import PIX as XRAY_PIX
    from .fit import attach_pixel_coords, posterior_predictive_draws, prepare_xray
    from .fit_flim import prepare_flim

    enable_parallel_chains(chains)  # before anything starts JAX
    with h5py.File(reduced, "r") as f:
        groups = set(f.keys())
    if "xray" not in groups:
        raise InputError(reduced, "no X-ray data (/xray): the joint model needs the scan")
    if not groups & {"flim", "pl"}:
        raise InputError(reduced, "no FLIM or PL data: the joint model needs a response")
    settings = load_regression_settings(settings_path)
    xray = prepare_xray(reduced, preset, crop=crop, likelihood=likelihood)
    flim = pl = None
    if "flim" in groups:
        flim = prepare_flim(reduced, preset, bin_pixels=bin_pixels, merge=merge)
    if "pl" in groups:
        pl_data = load_pl(reduced)
        pl_start = first_estimates(pl_data, preset)
        pl = (pl_data, pl_start, e_peak_centred(preset["priors"]["E_peak"], pl_start))
    model = build_joint_model(xray, preset, settings, flim=flim, pl=pl)
    for r, c in model.law_constants.items():
        log.info("joint: %s %s", r, "sampled as itself (its data pin it)" if c["pinned"]
                 else "as law + non-centred residual (its prior carries the residual)")  # fmt: skip
        if c["n_clamped"]:
            log.warning("%s: %d units lie beyond the X-ray edge range; their covariates are "
                        "the profile's value at its limit", r, c["n_clamped"])  # fmt: skip
    # The law's slopes of collinear covariates and the responses' residual scales leave narrow
    # regions a step size tuned for 0.9 acceptance overshoots (2 % divergent at 0.9 on the demo)
    tree = sample(model, sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
                  progress=progress,
                  target_accept=target_accept or JOINT_TARGET_ACCEPT)  # fmt: skip
    if posterior_predictive:
        tree["posterior_predictive"] = posterior_predictive_draws(tree, model, seed, progress)
    tree.attrs.update(
        model="joint", source=str(reduced), likelihood=likelihood, n_pixels=xray[0].graph.n,
        responses=json.dumps(list(model.law_constants)),
    )  # fmt: skip
    tree = attach_pixel_coords(tree, XRAY_PIX, xray[0].coords())
    if flim is not None:
        tree = attach_pixel_coords(tree, FLIM_PIX, flim[0].coords())
    if pl is not None:
        tree = attach_pixel_coords(tree, PT, pl[0].coords())
    return tree
