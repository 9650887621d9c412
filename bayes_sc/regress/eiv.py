"""Errors in variables, integrated exactly: the responses' likelihood, profiles marginalised.

A response y (n pixels of one crystal) depends on the covariate profiles through their spline
coefficients w_c ~ N(m_c, C_c) (:mod:`.profiles`)::

    y = μ(β, m) + Σ_c β_c B (w_c − m_c) + ε,   ε ~ N(0, diag(d))

with β_c the natural-unit slopes and B the spline design at the pixels' edge distances. For
fixed β the mean is linear in w and w is Gaussian, so w integrates out exactly:

    y | β ~ N(μ, diag(d) + V Vᵀ),   V = [β_c B L_c]_c,   L_c L_cᵀ = C_c,

a diagonal plus low-rank covariance (rank Σ_c K_c, 18 for three 6-coefficient profiles),
whose density costs O(n K²) by the Woodbury identity and the matrix determinant lemma. This is
the joint posterior of β and the profiles with the profiles integrated out — unlike plugging
in m (no profile uncertainty) or averaging fits over profile draws (multiple imputation, which
counts the noise's projection onto each drawn profile as profile uncertainty and so
over-covers where responses are noisy).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt

LOG_2PI = float(np.log(2.0 * np.pi))


def lowrank_normal_logp(resid, var, V):
    """log N(resid; 0, diag(var) + V Vᵀ) (PyTensor; numpy arrays work too).

    Parameters
    ----------
    resid : (n,) y − μ [response unit].
    var : (n,) diagonal variances [response unit²].
    V : (n, K) low-rank factor [response unit].
    """
    resid, var, V = pt.as_tensor(resid), pt.as_tensor(var), pt.as_tensor(V)
    inv = 1.0 / var
    VtDinv = (V * inv[:, None]).T  # (K, n)
    k = V.shape[1]
    capacitance = pt.eye(k) + VtDinv @ V  # I + Vᵀ D⁻¹ V, ≥ I: always well conditioned
    chol = pt.linalg.cholesky(capacitance)
    c = pt.linalg.solve_triangular(chol, VtDinv @ resid, lower=True)
    quad = pt.sum(resid**2 * inv) - pt.sum(c**2)
    logdet = pt.sum(pt.log(var)) + 2.0 * pt.sum(pt.log(pt.diag(chol)))
    return -0.5 * (quad + logdet + resid.shape[0] * LOG_2PI)


def factor_blocks(B, chols) -> np.ndarray:
    """(n, Σ K_c) constant part of V for one crystal: [B L_c]_c (V scales block c by β_c)."""
    return np.concatenate([B @ L for L in chols], axis=1)


def expand_slopes(sizes) -> np.ndarray:
    """(C, Σ K_c) 0/1 matrix taking the C slopes to V's columns (slope c over block c)."""
    E = np.zeros((len(sizes), int(sum(sizes))))
    start = 0
    for c, size in enumerate(sizes):
        E[c, start : start + size] = 1.0
        start += size
    return E
