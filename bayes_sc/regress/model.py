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
- standardisation (ȳ_r, s_r, x̄_rc, s_rc: fixed constants from the data, x̄ and s at the
  profiles' means) puts every prior on a unit scale (``models/regression.toml``);
  ``beta_std`` are the standardised slopes;
- with several crystals, (α_kr, β_kr) ~ N((α_r, β_r), diag(τ_r²)) (partial pooling: the law is
  one physics, each crystal may depart from it by a learned amount), sampled about their
  conditional posterior (:mod:`.pooling`).

Errors in variables, exactly: the mean is linear in the profile coefficients w, which are
Gaussian, so they are integrated out analytically (:mod:`.eiv`): each response's pixels of
crystal k are jointly Normal about the law at the profiles' means, with covariance
diag(σ² + se²) + Σ_c β_krc² B_k C_kc B_kᵀ — the profiles' uncertainty enters as an error shared
by every pixel, growing with the slope that carries it. Sampling w inside the model instead
couples β and w bilinearly (w free where β ≈ 0, pinned where β is large), a funnel NUTS
diverges in. Each response integrates the profiles on its own (the two responses' information
about w is not shared: a small loss of information); the joint model
(``--model joint``) shares everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .eiv import column_space, spline_normal_logp
from .inputs import COVARIATES
from .pooling import conditional_coefficients, crystal_information
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


def _segments(r: ResponseData, profiles) -> list[tuple[int, slice, np.ndarray, list]]:
    """Per crystal present in ``r``: (k, its pixels' slice, spline design B̃ of full column
    rank, the covariates' coefficient covariances reduced to it)."""
    out = []
    for k, B in enumerate(r.basis):
        if B is None:
            continue
        sel = np.flatnonzero(r.crystal == k)  # pixels are grouped by crystal
        B_red, covs = column_space(B, [profiles[k][c].cov for c in COVS])
        out.append((k, slice(int(sel[0]), int(sel[-1]) + 1), B_red, covs))
    return out


def _eiv_likelihood(segments):
    """logp and random of one response with the profiles integrated out (:mod:`.eiv`).

    Parameters of the distribution: mu (n,), var (n,) [unit, unit²]; slopes (crystal, C)
    natural-unit β of this response in each crystal.
    """

    def logp(value, mu, var, slopes):
        resid = value - mu
        total = 0.0
        for k, seg, B, covs in segments:
            S = sum(slopes[k, c] ** 2 * C for c, C in enumerate(covs))
            total = total + spline_normal_logp(resid[seg], var[seg], B, S)
        return total

    def random(mu, var, slopes, rng=None, size=None):
        shape = tuple(size) if size else np.broadcast_shapes(mu.shape, var.shape)
        y = mu + np.sqrt(var) * rng.standard_normal(shape)
        for k, seg, B, covs in segments:
            for c, C in enumerate(covs):  # each profile's error, scaled by its slope
                L = np.linalg.cholesky(C + 1e-12 * np.trace(C) * np.eye(len(C)))
                z = rng.standard_normal(shape[:-1] + (len(C),)) @ L.T
                y[..., seg] += slopes[..., k, c, None] * (z @ B.T)
        return y

    return logp, random


def _crystal_summaries(responses, xs_std, segments, n_cry, slope_prior_sd):
    """(crystal, response, 1 + C, 1 + C) information and (crystal, response, 1 + C) scores of
    every crystal's own likelihood, standardised (:func:`.pooling.crystal_information`; zero
    where a crystal lacks the response, so its coefficients follow the prior)."""
    P = 1 + len(COVS)
    H = np.zeros((n_cry, len(responses), P, P))
    h = np.zeros((n_cry, len(responses), P))
    for j, r in enumerate(responses):
        for k, seg, B, covs in segments[j]:
            H[k, j], h[k, j] = crystal_information(
                (r.y[seg] - r.y_centre) / r.y_scale,
                r.se[seg] / r.y_scale,
                xs_std[j][seg],
                B,
                [C / s**2 for C, s in zip(covs, r.x_scale, strict=True)],
                prior_sd=slope_prior_sd,
            )
    return H, h


def build_regression_model(
    responses: list[ResponseData],
    profiles: list[dict[str, Profile]],
    crystal_names,
    priors,
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
    """
    names = [r.name for r in responses]
    n_cry = len(crystal_names)
    coords = {"response": names, "covariate": list(COVS), "crystal": list(crystal_names),
              "coefficient": ["intercept", *COVS]}  # fmt: skip
    for r in responses:
        coords[f"{r.name}_unit"] = np.arange(r.y.size)
    RC = ("response", "covariate")
    # per response: covariates at w = m, standardised (n, C); per-crystal segments (_segments)
    xs_std = [(r.mean_covariates(profiles) - r.x_centre) / r.x_scale for r in responses]
    segments = [_segments(r, profiles) for r in responses]
    with pm.Model(coords=coords) as model:
        beta_std = _prior(priors, "beta_std", dims=RC)
        intercept_std = _prior(priors, "intercept_std", dims="response")
        sigma_std = _prior(priors, "sigma_std", dims="response")
        if n_cry > 1:
            shared = bool(priors["beta_crystal_sd"].get("shared", False))  # one sd per response
            b_sd = _prior(priors, "beta_crystal_sd", dims="response" if shared else RC)
            if shared:
                b_sd = pt.broadcast_to(b_sd[:, None], (len(names), len(COVS)))
            i_sd = _prior(priors, "intercept_crystal_sd", dims="response")
            H, h = _crystal_summaries(
                responses, xs_std, segments, n_cry, float(priors["beta_std"]["sigma"])
            )
            theta = conditional_coefficients(
                "crystal_coef",
                pt.concatenate([intercept_std[:, None], beta_std], axis=1),
                pt.concatenate([i_sd[:, None], b_sd], axis=1),
                H,
                h,
                dims=("crystal", "response", "coefficient"),
            )
            icpt_k, beta_k = theta[..., 0], theta[..., 1:]  # (crystal, response[, cov])
        else:
            beta_k, icpt_k = beta_std[None], intercept_std[None]
        y_scale = np.array([r.y_scale for r in responses])
        x_scale = np.stack([r.x_scale for r in responses])
        x_centre = np.stack([r.x_centre for r in responses])
        to_natural = y_scale[:, None] / x_scale  # (response, cov)
        beta = pm.Deterministic("beta", beta_std * to_natural, dims=RC)
        pm.Deterministic("sigma", sigma_std * y_scale, dims="response")
        y_centre = np.array([r.y_centre for r in responses])
        pm.Deterministic(
            "intercept",
            y_centre + y_scale * intercept_std - (beta * x_centre).sum(axis=-1),
            dims="response",
        )
        beta_nat_k = beta_k * to_natural[None]  # (crystal, response, cov)
        if n_cry > 1:
            pm.Deterministic("beta_crystal", beta_nat_k, dims=("crystal",) + RC)
        for j, r in enumerate(responses):
            # Pixels are grouped by crystal: broadcast each crystal's slopes over its segment
            # (a gather by pixel index costs more than the rest of the gradient).
            parts = [
                icpt_k[k, j] + (beta_k[k, j][None, :] * xs_std[j][seg]).sum(axis=-1)
                for k, seg, _, _ in segments[j]
            ]
            mu_std = pt.concatenate(parts) if len(parts) > 1 else parts[0]
            var = (sigma_std[j] * r.y_scale) ** 2 + r.se**2
            logp, random = _eiv_likelihood(segments[j])
            pm.CustomDist(
                f"{r.name}_obs",
                r.y_centre + r.y_scale * mu_std,
                var,
                beta_nat_k[:, j, :],
                logp=logp,
                random=random,
                signature="(n),(n),(k,c)->(n)",
                observed=r.y,
                dims=f"{r.name}_unit",
            )
    return model
