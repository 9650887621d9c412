"""The joint model (``bayes-sc fit --model joint``): X-ray, FLIM and PL likelihoods and the
structure → optics regression in one posterior.

The X-ray model (:mod:`.xray`) is built unchanged. Its fields ⟨a⟩, δψ, g_q enter the law through
their least-squares edge-distance profiles at every optical unit, ``x_i = H_i · field`` (H from
:func:`.law.covariate_projection`), recomputed for every draw of the fields. The law replaces
the responses' own spatial priors; per response r (standardised as in the two-stage regression,
priors from ``models/regression.toml``)::

    τ_i        = τ₀ + s_τ Σ_c β*_τc (x_ic − x̄_c) / s_c + r_i          [ns]
    E_peak_i   = E₀ + s_b Σ_c β*_bc (x_ic − x̄_c) / s_c / 1000 + r_i   [eV]

with r a BYM2 field over the modality's graph (SPEC §6: scale σ_r = s_r σ*_r, structured
fraction ρ_r learned): the part of the response the covariates do not explain, which may be
spatially smooth (the two-stage regression treats it as independent per pixel). The FLIM and
PL likelihoods then observe τ and E_peak exactly as in their own models, so the optical counts
inform β and, through β, the X-ray fields: uncertainty flows both ways. ``blueshift`` is
derived as in :mod:`.pl` (E_centre from the innermost quarter), so the blueshift law's
intercept is 1000 (E₀ − E_centre) − Σ β x̄.

Reported on dims ``(response, covariate)``: ``beta`` [response unit per covariate unit],
``beta_std``, ``intercept`` [response unit], ``sigma`` [response unit], as in regression.nc.
The standardisation constants (x̄, s, s_r) come from the first estimates: they set the priors'
scale only.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..errors import InputError
from ..physics.spline import continuation_sd
from .flim import PIX as FLIM_PIX
from .flim import build_flim_model
from .law import COVARIATES, PROFILE_ENDS, RESPONSES, continuation_ramps, covariate_projection
from .pl import PT, build_pl_model
from .spatial import bym2_field, bym2_sd, scaled_normal
from .xray import build_xray_model

COVS = tuple(COVARIATES)


def _value(entry):
    return entry["value"] if isinstance(entry, dict) else entry


def _prior(entry: dict, name: str, dims=None, **kw):
    """A PyMC variable ``name`` from a ``models/regression.toml`` prior entry."""
    args = {k: float(entry[k]) for k in ("mu", "sigma", "alpha", "beta") if k in entry}
    return getattr(pm, entry["dist"])(name, **args, dims=dims, **kw)


def _filled(values) -> np.ndarray:
    values = np.asarray(values, float)
    return np.where(np.isfinite(values), values, np.nanmedian(values))


def prior_spread(prior: dict) -> float:
    """A field's typical spread across a crystal from its preset prior [field unit]: the
    field's ``sd_scale`` (on its transformed scale) at the prior's typical value."""
    spec = prior["field"]
    if spec["transform"] != "log":
        return float(spec["sd_scale"])
    typical = prior["sigma"] / 2 if prior["dist"] == "HalfNormal" else np.exp(prior["mu"])
    return float(spec["sd_scale"] * typical)


def _residual_field(name, graph, law_mean, sigma, rho, start, *, centred, dims, unit):
    """The law's mean plus a BYM2 residual field (starting at ``start``) on ``dims``."""
    start = _filled(start)
    sd0 = max(float(np.std(start)), 1e-6)
    coef0 = graph.eigvecs.T @ (start - start.mean())
    sd_modes = sd0 * np.sqrt(0.5 * graph.structured_variance() + 0.5)
    return bym2_field(name, graph, law_mean, sigma, rho, centred=centred, dims=dims,
                      coef_init=coef0, sd_init=sd_modes, unit=unit)  # fmt: skip


def _pinned_field(name, graph, law_mean, sigma, rho, start, mean_prior, *, dims, unit):
    """Law + residual field, sampled as the response itself (its own data pin it).

    The response f = m + law + V c (m its residual mean, c the BYM2 coefficients) is written
    in the full orthonormal basis U = [1/√n, V] of the pixels and those coordinates are sampled
    (in ``unit``, near each pixel's standard error). Then m = mean(f − law) and c = Vᵀ(f − law)
    follow, and their priors enter as potentials: the same density (a linear bijection, constant
    Jacobian), but NUTS moves along f, which the data pin. Sampling c instead makes β and c
    trade off along a ridge as long as the law's effect and as narrow as a pixel's error (tree
    depth 10 on every draw).

    Returns (f, m).
    """
    start = _filled(start)
    n = graph.n
    U = np.column_stack([np.full(n, 1.0 / np.sqrt(n)), graph.eigvecs])
    full_dim = f"{dims}_full_mode"
    model = pm.modelcontext(None)
    if full_dim not in model.coords:
        model.add_coord(full_dim, np.arange(U.shape[1]))
    centre = float(start.mean())
    u = pm.Flat(f"{name}_u", dims=full_dim, initval=U.T @ (start - centre) / unit)
    f = pm.Deterministic(name, centre + unit * pt.dot(U, u), dims=dims)
    resid = f - law_mean
    m = resid.mean()
    c = pt.dot(graph.eigvecs.T, resid)
    pm.Potential(f"{name}_mean_prior", pm.logp(pm.Normal.dist(*mean_prior), m))
    pm.Potential(f"{name}_resid_prior", pm.logp(pm.Normal.dist(0.0, bym2_sd(graph, sigma, rho)),
                                                c).sum())  # fmt: skip
    return f, m


def pinned(y0, se, choice="auto") -> bool:
    """Whether a response's own data pin it against its residual about the law.

    ``choice`` is the ``[joint] pinned`` setting: true, false or ``"auto"``: pinned when the
    units' median standard error ``se`` is below half the spread of the first estimates ``y0``
    beyond their noise, √(var y0 − se²) (an upper bound of the residual's scale: it holds the
    law's part too, hence the half). Pinned responses are sampled as themselves
    (:func:`_pinned_field`), the others as law + non-centred residual: a pinned form where the
    prior dominates is a funnel in the residual's scale (the demo's τ: R-hat 1.06, 8
    divergences).
    """
    if choice != "auto":
        return bool(choice)
    se_med = float(np.nanmedian(se))
    spread = np.sqrt(max(float(np.nanvar(y0)) - se_med**2, 0.0))
    return se_med < 0.5 * spread


def _soft_floor(x, floor: float, width: float):
    """≈ x above ``floor`` + a few ``width``, smoothly ≥ ``floor`` below: keeps a lifetime
    positive while NUTS explores, without a flat region that would stall it."""
    return floor + width * pt.softplus((x - floor) / width)


def build_joint_model(xray, preset: dict, settings: dict, *, flim=None, pl=None) -> pm.Model:
    """The joint model of one crystal (see module docstring).

    Parameters
    ----------
    xray
        ``(data, first, saxs, waxs, summaries)`` as
        :func:`bayes_sc.inference.fit.prepare_xray` returns.
    preset
        Material preset (every modality's priors).
    settings
        ``models/regression.toml`` (``[priors]``, ``[profiles]``, ``[joint]``).
    flim
        ``(data, start, centred)`` as :func:`bayes_sc.inference.fit_flim.prepare_flim`
        returns, or None.
    pl
        ``(data, start, centred)``: :func:`.pl_data.load_pl`, :func:`.pl.first_estimates`,
        :func:`.pl.e_peak_centred`; or None.
    """
    xdata, first, saxs, waxs, summaries = xray
    g = xdata.graph
    xray_edge = np.asarray(xdata.coords()["xray_edge_um"], float)
    first_fields = np.column_stack([_filled(first[c][g.rows, g.cols]) for c in COVS])
    pri, joint = settings["priors"], settings["joint"]
    knots = int(_value(settings["profiles"]["max_interior_knots"]))
    margin = float(_value(settings["profiles"]["extrapolate_um"]))
    units = {}  # response -> (edge [µm], start values, their standard errors [unit])
    if pl is not None:
        units["blueshift"] = (pl[0].edge_um, 1000.0 * pl[1]["E_peak"], 1000.0 * pl[1]["E_peak_se"])
    if flim is not None:
        ok = flim[1]["ok"]
        units["tau"] = (np.asarray(flim[0].coords()["flim_edge_um"], float),
                        np.where(ok, flim[1]["tau"], np.nan), flim[1]["tau_sd"][ok])  # fmt: skip
    names = [r for r in RESPONSES if r in units]
    if not names:
        raise InputError(None, "the joint model needs FLIM or PL data besides the X-ray scan")
    law = {}
    for r in names:
        edge, y0, se = units[r]
        try:
            H, n_clamped = covariate_projection(xray_edge, edge, max_interior_knots=knots,
                                                margin_um=margin)  # fmt: skip
        except ValueError as err:
            raise InputError(None, f"cannot build covariate profiles: {err}") from None
        x0 = H @ first_fields
        # Standardisation (the priors' scale only): the first estimates' spread, or where
        # they do not vary (per-pixel WH censors g_q at 0 on small scans) the prior's.
        x_scale = x0.std(axis=0)
        for j, cov in enumerate(COVS):
            if not x_scale[j] > 0:
                x_scale[j] = prior_spread(preset["priors"][cov])
        y_scale = float(np.nanstd(y0))
        if not y_scale > 0:
            raise InputError(None, f"{r}: the first estimates of the response do not vary "
                             "across the crystal: nothing to regress on")  # fmt: skip
        ramps = continuation_ramps(xray_edge, edge, margin_um=margin)
        law[r] = dict(H=H, ramps=ramps, x_centre=x0.mean(axis=0), x_scale=x_scale, y_centre=float(
            np.nanmean(y0)), y_scale=y_scale, n_clamped=n_clamped,
            pinned=pinned(y0, se, joint.get("pinned", "auto")))  # fmt: skip
    # beyond the X-ray edge range, the profiles' end pieces continue with an uncertain slope
    # change (as in the two-stage regression), sd from a hold-out of the first estimates
    rings = int(_value(settings["profiles"]["continuation_holdout_rings"]))
    cont_sd = np.array([continuation_sd(first_fields[:, j], xray_edge, knots, rings)
                        for j in range(len(COVS))]).T  # (end, covariate)  # fmt: skip
    beyond = any(law[r]["ramps"].any() for r in names)
    rho_prior = joint["residual_rho"]
    coords = {"response": names, "covariate": list(COVS), "profile_end": list(PROFILE_ENDS)}
    with pm.Model(coords=coords) as model:
        build_xray_model(xdata, preset, saxs, waxs, first, summaries)
        fields = pt.stack([model[c] for c in COVS], axis=1)  # (n_xray, C)
        if beyond:
            eta = pm.Normal("profile_continuation_z", 0.0, 1.0, dims=("profile_end", "covariate"))
            slope_change = eta * cont_sd  # (end, C) [covariate unit / µm]
        params = {}
        for r in names:
            c = law[r]
            beta_std = _prior(pri["beta_std"], f"beta_std_{r}", dims="covariate")
            sigma_std = _prior(pri["sigma_std"], f"sigma_std_{r}")
            x = pt.dot(c["H"], fields)  # (n_units, C): the covariate profiles at the units
            if beyond:
                x = x + pt.dot(c["ramps"], slope_change)
            offset = c["y_scale"] * (((x - c["x_centre"]) / c["x_scale"]) * beta_std).sum(axis=1)
            params[r] = dict(beta_std=beta_std, sigma_std=sigma_std, offset=offset)

        def tau_field(graph, start, centred):
            c, p = law["tau"], params["tau"]
            rho = _prior(rho_prior, "tau_resid_rho")
            sigma = c["y_scale"] * p["sigma_std"]
            unit = float(np.clip(np.median(flim[1]["tau_sd"][flim[1]["ok"]]), 1e-3, 1.0))
            icpt = pri["intercept_std"]  # τ at the covariates' means, standardised
            if c["pinned"]:  # each pixel's photons pin τ: sample τ itself
                raw, p["centre"] = _pinned_field(
                    "tau_field", graph, p["offset"], sigma, rho, start,
                    (c["y_centre"] + c["y_scale"] * icpt["mu"], c["y_scale"] * icpt["sigma"]),
                    dims=FLIM_PIX, unit=unit,
                )  # fmt: skip
            else:
                p["centre"] = c["y_centre"] + c["y_scale"] * _prior(icpt, "intercept_std_tau")
                raw = _residual_field("tau_field", graph, p["centre"] + p["offset"], sigma, rho,
                                      start, centred=False, dims=FLIM_PIX, unit=unit)  # fmt: skip
            return _soft_floor(raw, float(_value(joint["tau_floor_ns"])), 0.02)

        def e_peak_field(graph, start, centred):
            c, p = law["blueshift"], params["blueshift"]
            e_pr = preset["priors"]["E_peak"]
            unit = float(np.clip(np.median(pl[1]["E_peak_se"]), 1e-6, 0.05))
            rho = _prior(rho_prior, "blueshift_resid_rho")
            sigma = c["y_scale"] * p["sigma_std"] / 1000.0  # [eV]
            if c["pinned"]:  # each spectrum pins its E_peak: sample E_peak itself
                f, p["centre"] = _pinned_field(
                    "E_peak_field", graph, p["offset"] / 1000.0, sigma, rho, start,
                    (e_pr["mu"], e_pr["sigma"]), dims=PT, unit=unit,
                )  # fmt: skip
                return f
            p["centre"] = scaled_normal("E_peak_mu", e_pr["mu"], e_pr["sigma"], unit,
                                        float(np.mean(start)))  # fmt: skip
            law_mean = p["centre"] + p["offset"] / 1000.0
            return _residual_field("E_peak_field", graph, law_mean, sigma, rho, start,
                                   centred=False, dims=PT, unit=unit)  # fmt: skip

        if pl is not None:
            build_pl_model(pl[0], preset, pl[1], e_peak_field=e_peak_field)
        if flim is not None:
            build_flim_model(flim[0], preset, flim[1], tau_field=tau_field)
        y_scale = np.array([law[r]["y_scale"] for r in names])
        x_scale = np.stack([law[r]["x_scale"] for r in names])
        x_centre = np.stack([law[r]["x_centre"] for r in names])
        beta_std = pm.Deterministic("beta_std", pt.stack([params[r]["beta_std"] for r in names]),
                                    dims=("response", "covariate"))  # fmt: skip
        beta = pm.Deterministic("beta", beta_std * (y_scale[:, None] / x_scale),
                                dims=("response", "covariate"))  # fmt: skip
        pm.Deterministic("sigma", pt.stack([params[r]["sigma_std"] for r in names]) * y_scale,
                         dims="response")  # fmt: skip
        at_zero = []  # each response's law at covariates 0 (as regression.nc's intercept)
        for j, r in enumerate(names):
            centre = params[r]["centre"]
            if r == "blueshift":  # blueshift is E_peak less the inner points' mean E_peak
                centre = 1000.0 * (centre - model["E_peak"][np.nonzero(pl[0].inner)[0]].mean())
            at_zero.append(centre - (beta[j] * x_centre[j]).sum())
        pm.Deterministic("intercept", pt.stack(at_zero), dims="response")
    model.law_constants = law  # for the caller's log and attrs
    return model
