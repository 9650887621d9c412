"""Errors in variables, integrated exactly: the responses' likelihood, profiles marginalised.

A response y (n pixels of one crystal) depends on the covariate profiles through their spline
coefficients w_c ~ N(m_c, C_c) (:mod:`.profiles`)::

    y = μ(β, m) + Σ_c β_c B (w_c − m_c) + ε,   ε ~ N(0, diag(d))

with β_c the natural-unit slopes and B the spline design at the pixels' edge distances. For
fixed β the mean is linear in w and w is Gaussian, so w integrates out exactly:

    y | β ~ N(μ, diag(d) + B S Bᵀ),   S = Σ_c β_c² C_c,

a diagonal plus low-rank covariance (the profiles share one basis, so the rank is K + 2 at
most: the cubic spline's coefficients and the two continuations of :mod:`.profiles`). Its
density
costs O(n K²) through the responses' projection onto the spline space: with M = Bᵀ D⁻¹ B and
b = Bᵀ D⁻¹ r,

    rᵀ Σ⁻¹ r = rᵀ D⁻¹ r − bᵀ M⁻¹ b + (M⁻¹ b)ᵀ (M⁻¹ + S)⁻¹ (M⁻¹ b),
    log det Σ = log det D + log det M + log det (M⁻¹ + S),

which needs no inverse of S (singular where a slope is 0) and only Cholesky factors of SPD
K × K matrices. This is the joint posterior of β and the profiles with the profiles integrated
out — unlike plugging in m (no profile uncertainty) or averaging fits over drawn profiles
(multiple imputation: it counts the noise's projection onto each drawn profile as profile
uncertainty, and each copy's slopes along a collinear ridge came out over-confident).

What the integration implies: the quadratic form rᵀ Σ⁻¹ r is the minimum over w of the joint
density's exponent (the profile likelihood, as orthogonal regression uses), and the rest,
det(I + M S)^(−½), falls as the slopes grow: the flat prior on w is a prior ∝ |β|^(−K) on the
response's share β_c w_c. Where covariates are nearly collinear this pulls the slopes along
the ridge by a fraction of a posterior sd, always to the same side (docs/benchmarks.md,
"The pooled slopes' common bias"). Dropping the factor removes the pull from point estimates
but leaves a likelihood that does not fall along the ridge at all: chains then wander to
slopes ten times the law's. So it stays: it is the Bayesian answer given the X-ray posterior
as the profiles' prior.

The responses inform the slopes only through the K + 2 dimensions of the spline space, and
a covariance growing with the slopes makes the density fall along a collinear ridge like a
variance estimated from that many dimensions less the law's: with K small its tails are
heavy and the intervals too wide (2 interior knots: 1.6-2 x the slopes' scatter). Hence the
profiles' 8 interior knots where the scan allows them (docs/benchmarks.md, session 38).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

LOG_2PI = float(np.log(2.0 * np.pi))


def spline_normal_logp(resid, var, B, S):
    """log N(resid; 0, diag(var) + B S Bᵀ) (PyTensor; numpy arrays work too).

    Parameters
    ----------
    resid : (n,) y − μ [response unit].
    var : (n,) diagonal variances [response unit²].
    B : (n, K) design of full column rank (see :func:`column_space`).
    S : (K, K) positive semi-definite [response unit²].
    """
    resid, var, B, S = (pt.as_tensor(v) for v in (resid, var, B, S))
    inv = 1.0 / var
    BtDinv = (B * inv[:, None]).T  # (K, n)
    chol_m = pt.linalg.cholesky(BtDinv @ B)
    y = pt.linalg.solve_triangular(chol_m, BtDinv @ resid, lower=True)
    eye = pt.eye(B.shape[1])
    chol_m_inv = pt.linalg.solve_triangular(chol_m, eye, lower=True)  # L⁻¹
    m_inv = chol_m_inv.T @ chol_m_inv
    m_inv_b = chol_m_inv.T @ y
    chol_p = pt.linalg.cholesky(m_inv + S)
    z = pt.linalg.solve_triangular(chol_p, m_inv_b, lower=True)
    quad = pt.sum(resid**2 * inv) - pt.sum(y**2) + pt.sum(z**2)
    logdet = (
        pt.sum(pt.log(var))
        + 2.0 * pt.sum(pt.log(pt.diag(chol_m)))
        + 2.0 * pt.sum(pt.log(pt.diag(chol_p)))
    )
    return -0.5 * (quad + logdet + resid.shape[0] * LOG_2PI)


def column_space(B, covs, rtol: float = 1e-9):
    """Reduce a spline design to full column rank: B S Bᵀ = B̃ S̃ B̃ᵀ with B̃ = B Z, S̃ = Zᵀ S Z.

    Z is an orthonormal basis of B's row space (pixels whose edge distances leave some spline
    coefficient unseen make B rank-deficient). Returns B̃ (n, r) and the reduced covariances.
    """
    _, sv, vt = np.linalg.svd(B, full_matrices=False)
    Z = vt[sv > rtol * sv[0]].T  # (K, r)
    return B @ Z, [Z.T @ C @ Z for C in covs]
