"""Crystal-level coefficients parameterised about their conditional posterior.

With several crystals each crystal k has its own standardised coefficients
θ_k = (α_k, β_k1, …, β_kC) ~ N(θ, T), T = diag(sd²) learned. Neither textbook form samples
well here: a crystal's ~2000 FLIM pixels pin its τ slopes far more tightly than the three
crystals pin sd, so a non-centred θ_k = θ + sd z is a funnel wherever sd is large against the
data's precision, and a centred θ_k is one where sd is small — and sd ranges over both, since
crystals of one physics may not depart at all (divergences either way: 69 dense, 11 diagonal
mass matrix, non-centred; 201 with centred intercepts).

So θ_k is written about its *conditional* posterior given θ and sd, from a Gaussian summary
of crystal k's own likelihood (information H_k, score h_k = H_k θ̂_k, fixed constants)::

    P_k = T⁻¹ + H_k,   m_k = P_k⁻¹ (T⁻¹ θ + h_k),   θ_k = m_k + L_kᵀ⁻¹ z_k,   P_k = L_k L_kᵀ,

which is non-centred where the prior dominates (sd small: θ_k ≈ θ + sd z) and centred where
the data do (θ_k ≈ θ̂_k + H_k^{-½} z), the partially non-centred form of Papaspiliopoulos,
Roberts & Sköld (2007, Stat. Sci. 22, 59) with the weights made continuous. It is a change of
variables only: the density of θ_k is its prior N(θ, T) plus log |∂θ_k/∂z_k| = −Σ log diag L_k,
so the posterior is exact whatever the summary; a poor summary costs efficiency, not accuracy.
The summary is a generalised-least-squares fit of each crystal with its errors in variables at a
pilot slope (:func:`crystal_information`).

The change of variables enters as a ``pm.Potential``, which PyMC's prior-predictive sampling
ignores: draw prior predictives of this model by hand (nothing in bayes_sc draws them).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt


def _apply_sigma_inv(var, B, S, X):
    """(diag(var) + B S Bᵀ)⁻¹ X by Woodbury without inverting S (which may be singular)."""
    dinv_x = X / var[:, None]
    dinv_b = B / var[:, None]
    M = B.T @ dinv_b
    inner = np.linalg.solve(np.eye(len(S)) + M @ S, B.T @ dinv_x)
    return dinv_x - dinv_b @ (S @ inner)


def crystal_information(y_std, se_std, xs, B, covs_std, prior_sd: float):
    """Gaussian summary (H, h) of one crystal's likelihood for its coefficients (α, β).

    Parameters
    ----------
    y_std, se_std : (n,) responses and their standard errors, standardised [response sd].
    xs : (n, C) standardised covariates at the profiles' means.
    B : (n, K) spline design of full column rank.
    covs_std : C arrays (K, K), the profiles' coefficient covariances over the covariates'
        squared scales (so that β_std² covs_std[c] is in response sd²).
    prior_sd : ridge on the pilot slopes, the standardised slopes' prior sd [response sd per
        covariate sd].

    Returns
    -------
    H : (1 + C, 1 + C) information of (α, β) with the responses' scatter and the profiles'
        errors at the pilot slopes; h : (1 + C,) its score H θ̂.
    """
    X = np.column_stack([np.ones(y_std.size), xs])
    ridge = np.diag([0.0] + [prior_sd**-2] * xs.shape[1])
    # Pilot: least squares, then the scatter beyond the measurement errors, then GLS with it.
    coef, *_ = np.linalg.lstsq(X, y_std, rcond=None)
    resid = y_std - X @ coef
    scatter = max(float(np.mean(resid**2) - np.mean(se_std**2)), 1e-3 * float(np.var(y_std)))
    var = scatter + se_std**2
    H0 = X.T @ (X / var[:, None])
    coef = np.linalg.solve(H0 + ridge, X.T @ (y_std / var))
    S = sum(b**2 * C for b, C in zip(coef[1:], covs_std, strict=True))
    sinv_x = _apply_sigma_inv(var, B, S, X)
    return X.T @ sinv_x, sinv_x.T @ y_std


def conditional_coefficients(name, mean, sd, H, h, dims):
    """Per-crystal coefficients θ_k ~ N(mean, diag(sd²)), sampled about their conditional
    posterior (module docstring).

    Parameters
    ----------
    name : the standardised offsets are sampled as ``{name}_z``.
    mean, sd : (..., P) tensors, the population mean and sd of every coefficient.
    H, h : (crystal, ..., P, P) and (crystal, ..., P) numpy arrays from
        :func:`crystal_information`.
    dims : dims of ``{name}_z``, (crystal, ..., P).

    Returns
    -------
    θ : (crystal, ..., P) tensor.
    """
    z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
    prec = 1.0 / sd**2  # (..., P)
    P = pt.as_tensor(H) + pt.eye(H.shape[-1]) * prec[None, ..., None, :]
    L = pt.linalg.cholesky(P)
    rhs = (prec * mean)[None] + h
    m = pt.linalg.cho_solve((L, True), rhs[..., None])[..., 0]
    offset = pt.linalg.solve_triangular(pt.swapaxes(L, -1, -2), z[..., None], lower=False)
    theta = m + offset[..., 0]
    diag_l = pt.diagonal(L, axis1=-2, axis2=-1)
    # The prior of θ_k replaces z's N(0, 1); the Jacobian of z → θ_k is L_kᵀ⁻¹.
    log_prior = pm.logp(pm.Normal.dist(mean[None], sd[None]), theta).sum()
    log_base = pm.logp(pm.Normal.dist(0.0, 1.0), z).sum()
    pm.Potential(f"{name}_change_of_variables", log_prior - pt.log(diag_l).sum() - log_base)
    return theta
