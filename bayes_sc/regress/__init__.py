"""``bayes-sc regress``: blueshift and τ against ⟨a⟩, δψ and g_q (SPEC §7 ``regression.nc``).

Two-stage, errors in variables: each crystal's X-ray posterior gives covariate profiles
against edge distance as Gaussians over spline coefficients (:mod:`.profiles`); the optical
posteriors give per-pixel responses with their sds; one PyMC model (:mod:`.model`) regresses
the responses on the profiles at their edge distances, the profiles' coefficients integrated
out exactly (:mod:`.eiv`), over one or several crystals pooled hierarchically. Collinearity
is diagnosed and warned about in plain words (:mod:`.collinearity`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from ..errors import InputError
from ..presets import load_regression_settings
from ..provenance import step_provenance
from .collinearity import (
    collinearity_warnings,
    contraction,
    design_diagnostics,
    posterior_correlation,
)
from .inputs import COVARIATES, RESPONSES, CrystalInputs, read_posteriors
from .model import COVS, ResponseData, build_regression_model
from .profiles import Profile, estimate_profile

log = logging.getLogger(__name__)
PROFILE_GRID = 50  # edge distances at which profile bands are stored for the report


def load_settings(path=None) -> dict:
    """The regression's priors and settings (``models/regression.toml`` by default)."""
    return load_regression_settings(path)


def _value(entry):
    return entry["value"] if isinstance(entry, dict) else entry


def crystal_profiles(cry: CrystalInputs, settings: dict) -> dict[str, Profile]:
    """Covariate profiles of one crystal from its X-ray posterior draws."""
    knots = int(_value(settings["profiles"]["max_interior_knots"]))
    rings = int(_value(settings["profiles"]["continuation_holdout_rings"]))
    draws, edge = cry.covariate_draws, cry.xray_edge_um
    try:
        return {c: estimate_profile(c, COVARIATES[c], draws[c], edge, knots, rings) for c in COVS}
    except ValueError as err:
        raise InputError(cry.xray_source, f"cannot estimate covariate profiles: {err}") from None


def response_data(name, crystals, profiles, settings) -> ResponseData | None:
    """Pool response ``name`` over crystals, keeping pixels within the profiles' edge range."""
    margin = float(_value(settings["profiles"]["extrapolate_um"]))
    parts, basis, dropped = [], [], 0
    for k, cry in enumerate(crystals):
        resp = cry.responses.get(name)
        if resp is None:
            basis.append(None)
            continue
        prof = profiles[k][COVS[0]]
        b = prof.basis
        keep = (resp.edge_um >= b.lo - margin) & (resp.edge_um <= b.hi + margin)
        if not keep.any():
            raise InputError(
                resp.source,
                f"no {name} data overlap the X-ray posterior's edge distances: "
                f"{name} spans {resp.edge_um.min():.2f}-{resp.edge_um.max():.2f} um, the X-ray "
                f"covariates {b.lo:.2f}-{b.hi:.2f} um ({cry.xray_source})",
            )
        if not (np.isfinite(resp.value[keep]).all() and np.isfinite(resp.sd[keep]).all()):
            raise InputError(resp.source, f"{name} posterior holds NaN or infinite values")
        dropped += int((~keep).sum())
        parts.append((k, resp.value[keep], resp.sd[keep], resp.edge_um[keep]))
        basis.append(prof.design(resp.edge_um[keep]))
    if not parts:
        return None
    y = np.concatenate([p[1] for p in parts])
    crystal = np.concatenate([np.full(p[1].size, p[0]) for p in parts])
    x = np.concatenate(
        [np.column_stack([basis[k] @ profiles[k][c].mean for c in COVS]) for k, *_ in parts]
    )
    x_scale = x.std(axis=0)
    if y.size < 3 or y.std() == 0 or np.any(x_scale == 0):
        raise InputError(
            None,
            f"{name}: too few distinct pixels or edge distances to regress on ({y.size} pixels)",
        )
    return ResponseData(
        name,
        RESPONSES[name][2],
        y,
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
        crystal,
        basis,
        float(y.mean()),
        float(y.std()),
        x.mean(axis=0),
        x_scale,
        dropped,
    )


def _profile_bands(crystals, profiles, prob) -> xr.Dataset:
    """Covariate profiles with credible bands on a grid of edge distances, per crystal."""
    out = {}
    for k in range(len(crystals)):
        b = profiles[k][COVS[0]].basis
        grid = np.linspace(b.lo, b.hi, PROFILE_GRID)
        for c in COVS:
            mean, lo, hi = profiles[k][c].band(grid, prob)
            dims = (f"edge_{k}",)
            out[f"{c}_mean_{k}"] = xr.DataArray(mean, dims=dims, coords={dims[0]: grid})
            out[f"{c}_lower_{k}"] = xr.DataArray(lo, dims=dims, coords={dims[0]: grid})
            out[f"{c}_upper_{k}"] = xr.DataArray(hi, dims=dims, coords={dims[0]: grid})
    ds = xr.Dataset(out)
    ds.attrs.update(crystals=json.dumps([c.name for c in crystals]), prob=prob)
    return ds


def regress(
    posteriors,
    output,
    *,
    sampler="numpyro",
    chains=2,
    draws=2000,
    tune=1000,
    seed=0,
    progress=True,
    posterior_predictive=False,
    ci_prob=0.9,
    settings_path=None,
    target_accept=0.95,
) -> tuple[Path, dict]:
    """Fit the regression and write ``output`` (regression.nc) atomically.

    Returns the path and a summary dict: β with ``ci_prob`` intervals, collinearity, warnings.
    """
    from ..inference.fit import posterior_predictive_draws
    from ..inference.sample import enable_parallel_chains, sample, write_posterior

    output = Path(output)
    if output.resolve() in {Path(p).resolve() for p in posteriors}:
        raise InputError(output, "the output would overwrite an input posterior")
    settings = load_settings(settings_path)
    crystals = read_posteriors(posteriors)
    profiles = [crystal_profiles(c, settings) for c in crystals]
    responses = [
        r
        for name in RESPONSES
        if (r := response_data(name, crystals, profiles, settings)) is not None
    ]
    for r in responses:
        if r.n_dropped:
            log.warning(
                "%s: %d pixels outside the X-ray edge-distance range left out", r.name, r.n_dropped
            )
    enable_parallel_chains(chains)
    model = build_regression_model(
        responses, profiles, [c.name for c in crystals], settings["priors"]
    )
    # One crystal: slopes of collinear covariates trade off along a ridge, and a dense mass
    # matrix turns it into a round posterior for NUTS (0 divergences, where a diagonal one
    # diverged). Pooled crystals: each crystal's coefficients are already sampled about their
    # conditional posterior (.pooling), and the warm-up's dense estimate only adds noise
    # (3 full-size crystals: 6 divergences dense, 0 diagonal; R-hat 1.009 vs 1.005).
    tree = sample(
        model,
        sampler=sampler,
        chains=chains,
        draws=draws,
        tune=tune,
        seed=seed,
        progress=progress,
        dense_mass=len(crystals) == 1,
        target_accept=target_accept,
    )
    if posterior_predictive:
        tree["posterior_predictive"] = posterior_predictive_draws(tree, model, seed, progress)
    post = tree["posterior"].to_dataset()
    limits = {k: float(_value(v)) for k, v in settings["collinearity"].items()}
    collinearity, warnings = {}, []
    for j, r in enumerate(responses):
        design = design_diagnostics(r.mean_covariates(profiles), COVS)
        bs = post["beta_std"].values[:, :, j, :].reshape(-1, len(COVS))
        bcorr = posterior_correlation(bs)
        contr = contraction(bs, float(settings["priors"]["beta_std"]["sigma"]))
        design["beta_std_posterior_correlation"] = bcorr.round(4).tolist()
        design["beta_std_contraction"] = dict(zip(COVS, contr.round(3).tolist(), strict=True))
        design["n_units"], design["n_dropped"] = int(r.y.size), r.n_dropped
        collinearity[r.name] = design
        warnings += collinearity_warnings(r.name, design, bcorr, contr, limits)
    for w in warnings:
        log.warning("%s", w)
    const = {f"{r.name}_edge_um": ((f"{r.name}_unit",), r.edge_um) for r in responses}
    const.update({f"{r.name}_crystal": ((f"{r.name}_unit",), r.crystal) for r in responses})
    # Each pixel's response (value, sd as regressed) against edge distance: the report's profiles.
    const.update({f"{r.name}_mean": ((f"{r.name}_unit",), r.y) for r in responses})
    const.update({f"{r.name}_sd": ((f"{r.name}_unit",), r.se) for r in responses})
    tree["constant_data"] = xr.DataTree(xr.Dataset(const))
    tree["profiles"] = xr.DataTree(_profile_bands(crystals, profiles, ci_prob))
    tree.attrs.update(
        model="regression",
        errors_in_variables="profile coefficients integrated out analytically (Gaussian)",
        crystals=json.dumps([c.name for c in crystals]),
        sources=json.dumps([s for c in crystals for s in c.sources]),
        collinearity=json.dumps(collinearity),
        warnings=json.dumps(warnings),
        covariate_units=json.dumps(COVARIATES),
        response_units=json.dumps({r.name: r.unit for r in responses}),
        # per crystal and response: "likelihood" (per-pixel ML summaries) or "posterior"
        response_summaries=json.dumps(
            {c.name: {k: v.summary for k, v in c.responses.items()} for c in crystals}
        ),  # fmt: skip
        bayes_sc_version=__version__,
    )
    run = dict(sampler=sampler, chains=chains, draws=draws, tune=tune, ci_prob=ci_prob,
               target_accept=target_accept,
               posterior_predictive=posterior_predictive)  # fmt: skip
    from ..presets import preset_dir  # the settings files are inputs too

    tomls = [preset_dir() / "regression.toml"] + ([Path(settings_path)] if settings_path else [])
    tree.attrs.update(step_provenance([*posteriors, *tomls], run, seed))
    write_posterior(tree, output)
    return output, summarise(tree, ci_prob) | {"warnings": warnings}


def summarise(tree: xr.DataTree, ci_prob: float = 0.9) -> dict:
    """β per response and covariate: posterior mean, sd and central ``ci_prob`` interval."""
    post = tree["posterior"].to_dataset()
    lo_q, hi_q = 0.5 - ci_prob / 2, 0.5 + ci_prob / 2
    out = {}
    for r in post["response"].values:
        for c in post["covariate"].values:
            v = post["beta"].sel(response=r, covariate=c).values.ravel()
            out[f"{r}/{c}"] = {
                "mean": float(v.mean()),
                "sd": float(v.std()),
                "lower": float(np.quantile(v, lo_q)),
                "upper": float(np.quantile(v, hi_q)),
            }
    return {"beta": out, "ci_prob": ci_prob}


def format_betas(summary: dict) -> str:
    """β with their credible intervals as text, one line per response and covariate."""
    pct = round(100 * summary["ci_prob"])
    lines = [f"beta (natural units per unit covariate) with {pct} % credible intervals:"]
    for key, b in summary["beta"].items():
        r, c = key.split("/")
        unit = f"{RESPONSES[r][2]}/{COVARIATES[c]}"
        lines.append(f"  {r:>9} ~ {c:<9} {b['mean']:+10.4g}  [{b['lower']:+.4g}, "
                     f"{b['upper']:+.4g}] {unit}")  # fmt: skip
    lines += [f"warning: {w}" for w in summary.get("warnings", [])]
    return "\n".join(lines)
