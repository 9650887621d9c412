"""The structure → optics regression as a PyMC model (errors in variables, pooled crystals).

For response r (τ [ns], blueshift [meV]) at a pixel or point i of crystal k, at edge distance
e_i [µm]::

    y_i ~ Normal(ȳ_r + s_r (α_kr + Σ_c β_krc (f_kc(e_i) − x̄_rc) / s_rc),  √(σ_r² + se_i²))

- ``f_kc(e) = B_k(e) w_kc`` is covariate c's profile in crystal k, its coefficients
  ``w_kc ~ N(m_kc, C_kc)`` from the X-ray posterior (:mod:`.profiles`);
- y_i and se_i are that pixel's own maximum-likelihood estimate and standard error (its
  measurement error; :mod:`.inputs`: the response fits' spatial priors are not reused, the law
  is this model's prior for the response), σ_r the scatter of the responses about the law
  (real pixel-to-pixel variation);
- standardisation (ȳ_r, s_r, x̄_rc, s_rc: fixed constants from the data) puts every prior on a
  unit scale (``models/regression.toml``); ``beta_std`` are the standardised slopes;
- with several crystals, β_krc = β_rc + τ_rc z_krc and α_kr likewise (non-centred partial
  pooling): the law is one physics, each crystal may depart from it by a learned amount.

Errors in variables by multiple imputation (a "cut" of the X-ray posterior): M profile draws
w⁽ᵐ⁾ ~ N(m, C) each give fixed covariates, and the model holds M independent copies of the
regression (dim ``imputation``), one per draw, sampled together; pooling their draws gives
p(β | y) = ∫ p(β | y, w) p(w | X-ray) dw. Sampling w inside one regression instead couples
β and w bilinearly (w is free where β ≈ 0, pinned where β is large), a funnel NUTS diverges
in; each copy here is a linear-Gaussian regression, and the optical data do not feed back
into the X-ray fields (the joint model, ``--model joint``, does that).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .inputs import COVARIATES
from .profiles import Profile

COVS = tuple(COVARIATES)


@dataclass(frozen=True)
class ResponseData:
    """One response pooled over crystals, with its standardisation constants.

    Attributes
    ----------
    name, unit : response name and unit.
    y, se, edge_um : (n,) per-pixel estimates, their sds [unit] and edge distances [µm].
    crystal : (n,) int, the crystal of each pixel/point.
    basis : per crystal, (n_k, K_k) spline design at its pixels' edges (None: crystal absent).
    y_centre, y_scale : standardisation of y [unit].
    x_centre, x_scale : (C,) standardisation of the covariates at these pixels [covariate unit].
    n_dropped : pixels left out because their edge distance lies outside the X-ray profile's.
    """

    name: str
    unit: str
    y: np.ndarray
    se: np.ndarray
    edge_um: np.ndarray
    crystal: np.ndarray
    basis: list
    y_centre: float
    y_scale: float
    x_centre: np.ndarray
    x_scale: np.ndarray
    n_dropped: int

    def mean_covariates(self, profiles: list[dict[str, Profile]]) -> np.ndarray:
        """(n, C) covariates at every pixel from the posterior-mean profiles."""
        out = np.empty((self.y.size, len(COVS)))
        for k, B in enumerate(self.basis):
            if B is not None:
                sel = self.crystal == k
                out[sel] = np.column_stack([B @ profiles[k][c].mean for c in COVS])
        return out


def _prior(priors: dict, name: str, dims=None, **kw):
    p = priors[name]
    dist = getattr(pm, p["dist"])
    args = {k: float(p[k]) for k in ("mu", "sigma") if k in p}
    return dist(name, **args, dims=dims, **kw)


def imputed_covariates(r: ResponseData, profiles, n_imputations: int, rng) -> np.ndarray:
    """(M, n, C) standardised covariates of response ``r`` for M profile draws."""
    out = np.empty((n_imputations, r.y.size, len(COVS)))
    for k, B in enumerate(r.basis):
        if B is None:
            continue
        sel = r.crystal == k
        for c_i, c in enumerate(COVS):
            prof = profiles[k][c]
            w = prof.mean + rng.standard_normal((n_imputations, prof.mean.size)) @ prof.chol().T
            out[:, sel, c_i] = w @ B.T
    return (out - r.x_centre) / r.x_scale


def build_regression_model(
    responses: list[ResponseData],
    profiles: list[dict[str, Profile]],
    crystal_names,
    priors,
    *,
    n_imputations: int = 16,
    seed: int = 0,
) -> pm.Model:
    """The regression of every response on the covariate profiles of every crystal.

    Parameters
    ----------
    responses
        One :class:`ResponseData` per response present (blueshift, tau).
    profiles
        Per crystal, {covariate: :class:`~.profiles.Profile`}.
    crystal_names
        Names of the crystals (order of ``profiles``).
    priors
        The ``[priors]`` table of ``models/regression.toml``.
    n_imputations
        Profile draws M (independent copies of the regression).
    seed
        Seed of the profile draws.
    """
    rng = np.random.default_rng(seed)
    names = [r.name for r in responses]
    n_cry = len(crystal_names)
    coords = {
        "imputation": np.arange(n_imputations),
        "response": names,
        "covariate": list(COVS),
        "crystal": list(crystal_names),
    }
    for r in responses:
        coords[f"{r.name}_unit"] = np.arange(r.y.size)
    M, RC = ("imputation",), ("response", "covariate")
    with pm.Model(coords=coords) as model:
        beta_std = _prior(priors, "beta_std", dims=M + RC)
        intercept_std = _prior(priors, "intercept_std", dims=M + ("response",))
        sigma_std = _prior(priors, "sigma_std", dims=M + ("response",))
        if n_cry > 1:
            b_sd = _prior(priors, "beta_crystal_sd", dims=M + RC)
            b_z = pm.Normal("beta_crystal_z", 0.0, 1.0, dims=M + ("crystal",) + RC)
            beta_k = beta_std[:, None] + b_sd[:, None] * b_z  # (M, crystal, response, cov)
            i_sd = _prior(priors, "intercept_crystal_sd", dims=M + ("response",))
            i_z = pm.Normal("intercept_crystal_z", 0.0, 1.0, dims=M + ("crystal", "response"))
            icpt_k = intercept_std[:, None] + i_sd[:, None] * i_z
        else:
            beta_k, icpt_k = beta_std[:, None], intercept_std[:, None]
        y_scale = np.array([r.y_scale for r in responses])
        x_scale = np.stack([r.x_scale for r in responses])
        x_centre = np.stack([r.x_centre for r in responses])
        beta = pm.Deterministic("beta", beta_std * (y_scale[:, None] / x_scale), dims=M + RC)
        pm.Deterministic("sigma", sigma_std * y_scale, dims=M + ("response",))
        y_centre = np.array([r.y_centre for r in responses])
        pm.Deterministic(
            "intercept",
            y_centre + y_scale * intercept_std - (beta * x_centre).sum(axis=-1),
            dims=M + ("response",),
        )
        if n_cry > 1:
            pm.Deterministic(
                "beta_crystal",
                beta_k * (y_scale[:, None] / x_scale)[None, None],
                dims=M + ("crystal",) + RC,
            )
        for j, r in enumerate(responses):
            xs = imputed_covariates(r, profiles, n_imputations, rng)  # (M, n, C)
            # Pixels are grouped by crystal: broadcast each crystal's slopes over its segment
            # (a gather by pixel index costs more than the rest of the gradient).
            segments = []
            for k in np.unique(r.crystal):
                sel = np.flatnonzero(r.crystal == k)
                seg = slice(int(sel[0]), int(sel[-1]) + 1)
                segments.append(
                    icpt_k[:, k, j, None] + (beta_k[:, k, j, None, :] * xs[:, seg, :]).sum(axis=-1)
                )
            mu_std = pt.concatenate(segments, axis=1) if len(segments) > 1 else segments[0]
            sd = pt.sqrt((sigma_std[:, j, None] * r.y_scale) ** 2 + r.se[None] ** 2)
            pm.Normal(
                f"{r.name}_obs",
                r.y_centre + r.y_scale * mu_std,
                sd,
                observed=np.broadcast_to(r.y, (n_imputations, r.y.size)),
                dims=M + (f"{r.name}_unit",),
            )
    return model


def fold_imputations(ds):
    """Move the ``imputation`` dim into ``draw`` (interleaved: draw d of imputation m becomes
    draw d·M + m), so every chain holds all imputations in each half (split R-hat stays
    meaningful) and downstream tools see plain (chain, draw, ...) variables."""
    import xarray as xr

    if "imputation" not in ds.dims:
        return ds
    n = ds.sizes["imputation"]
    out = {}
    for name, da in ds.data_vars.items():
        if "imputation" in da.dims:
            da = da.transpose("chain", "draw", "imputation", ...)
            v = da.values.reshape((da.shape[0], -1) + da.shape[3:])
            out[name] = xr.Variable(("chain", "draw") + da.dims[3:], v, da.attrs)
        else:  # a variable shared by the copies: repeated for each imputation
            v = np.repeat(da.values, n, axis=1) if "draw" in da.dims else da.values
            out[name] = xr.Variable(da.dims, v, da.attrs)
    coords = {k: v for k, v in ds.coords.items() if k not in ("draw", "imputation")}
    folded = xr.Dataset(out, coords=coords, attrs=ds.attrs)
    return folded.assign_coords(draw=np.arange(folded.sizes["draw"]))
