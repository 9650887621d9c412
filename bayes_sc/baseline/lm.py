"""Batched Levenberg–Marquardt fits in JAX: Poisson maximum likelihood or weighted least squares.

One small model ``mu_fn(p, x) -> (B,)`` is fitted to many rows at once (``jax.vmap``) by damped
Gauss–Newton / Fisher-scoring steps, until every row's Newton decrement is below ``tol`` (or
``n_iter`` steps). Returned with each fit: the inverse Fisher (Poisson) or Gauss–Newton
(least-squares) matrix at the optimum and the Newton decrement (≈ 0 at an optimum).
"""

from __future__ import annotations

import time

import numpy as np

LOSSES = ("poisson", "ls")
LAST_TIMING: dict = {}  # compile and run time [s] of the last lm_fit call (for benchmarks)


def lm_fit(
    mu_fn, p0, y, x, lo, hi, *, loss: str = "poisson", n_iter: int = 60, prior_sd=None,
    prior_mean=None, tol: float = 1e-8, mu_jac_fn=None,
):  # fmt: skip
    """Fit ``mu_fn`` to every row of ``y``.

    Parameters
    ----------
    mu_fn
        ``mu_fn(p, x) -> (B,)`` expected counts for parameters ``p`` (k,) and row data ``x``.
    p0, lo, hi
        (n, k) starting values and box bounds.
    y
        (n, B) observed counts.
    x
        Per-row extra data for ``mu_fn`` (a pytree of arrays with leading dim n), or None.
    loss
        ``"poisson"`` (maximum likelihood on counts) or ``"ls"`` (least squares weighted by
        1 / max(y, 1): Neyman's χ², the classic FLIM-software fit).
    prior_sd, prior_mean
        Optional (k,) sd and (n, k) mean of a Gaussian penalty (a prior: MAP instead of ML);
        the mean defaults to ``p0``.
    tol
        Newton decrement (≈ twice the log-likelihood still to gain) at which a row has converged.
    mu_jac_fn
        Optional ``(p, x) -> (mu, J)`` with J (B, k): a cheaper Jacobian than ``jax.jacfwd``
        (e.g. analytic in linear parameters).

    Returns
    -------
    p, cov, decrement
        (n, k) estimates, (n, k, k) inverse curvature, (n,) Newton decrement.
    """
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}")
    p0 = np.asarray(p0, float)
    k = p0.shape[1]
    prec = np.zeros(k) if prior_sd is None else np.asarray(prior_sd, float) ** -2.0
    if x is None:
        x = np.zeros(p0.shape[0])

    solve = _solve3 if k == 3 else jnp.linalg.solve

    def objective(p, y_, x_, c):
        mu = mu_fn(p, x_)
        pen = 0.5 * jnp.sum(prec * (p - c) ** 2)
        if loss == "poisson":
            return jnp.sum(mu - y_ * jnp.log(jnp.maximum(mu, 1e-300))) + pen
        return 0.5 * jnp.sum((y_ - mu) ** 2 / jnp.maximum(y_, 1.0)) + pen

    def with_aux(p, x_):
        mu = mu_fn(p, x_)
        return mu, mu

    jac = mu_jac_fn or (lambda p, x_: jax.jacfwd(with_aux, has_aux=True)(p, x_)[::-1])

    def grad_curv(p, y_, x_, c):
        mu, J = jac(p, x_)
        w = 1.0 / jnp.maximum(mu, 1e-300) if loss == "poisson" else 1.0 / jnp.maximum(y_, 1.0)
        r = (y_ - mu) * w
        g = J.T @ r - prec * (p - c)
        return g, (J * w[:, None]).T @ J + jnp.diag(prec)

    def fit_one(p, y_, x_, lo_, hi_, c):
        def step(state):
            i, p, lam, f, _dec = state
            g, F = grad_curv(p, y_, x_, c)
            A = F + lam * jnp.diag(jnp.diag(F)) + 1e-12 * jnp.eye(k)
            new = jnp.clip(p + solve(A, g), lo_, hi_)
            f_new = objective(new, y_, x_, c)
            better = f_new <= f
            dec = g @ solve(F + 1e-12 * jnp.eye(k), g)
            return (i + 1, jnp.where(better, new, p), jnp.where(better, lam / 3, lam * 4),
                    jnp.where(better, f_new, f), dec)  # fmt: skip

        def going(state):  # stop at n_iter, or once the Newton decrement says converged
            return (state[0] < n_iter) & (state[4] > tol)

        init = (0, p, 1e-3, objective(p, y_, x_, c), jnp.inf)
        _, p, _, _, _ = jax.lax.while_loop(going, step, init)
        g, F = grad_curv(p, y_, x_, c)
        F = F + 1e-12 * jnp.eye(k)
        return p, jnp.linalg.inv(F), g @ jnp.linalg.solve(F, g)

    centre = p0 if prior_mean is None else np.asarray(prior_mean, float)
    args = (p0, np.asarray(y, float), x, np.asarray(lo, float), np.asarray(hi, float), centre)
    t0 = time.perf_counter()
    run = jax.jit(jax.vmap(fit_one)).lower(*args).compile()
    t1 = time.perf_counter()
    p, cov, dec = (np.asarray(v) for v in jax.block_until_ready(run(*args)))
    LAST_TIMING.update(compile_s=t1 - t0, run_s=time.perf_counter() - t1, rows=p0.shape[0])
    return p, cov, dec


def _solve3(A, b):
    """Solve a 3 × 3 system by cofactors: elementwise, so a vmap over thousands of pixels stays
    vectorised (a batched LAPACK call per tiny matrix costs more than the arithmetic)."""
    c00 = A[1, 1] * A[2, 2] - A[1, 2] * A[2, 1]
    c01 = A[1, 2] * A[2, 0] - A[1, 0] * A[2, 2]
    c02 = A[1, 0] * A[2, 1] - A[1, 1] * A[2, 0]
    c10 = A[0, 2] * A[2, 1] - A[0, 1] * A[2, 2]
    c11 = A[0, 0] * A[2, 2] - A[0, 2] * A[2, 0]
    c12 = A[0, 1] * A[2, 0] - A[0, 0] * A[2, 1]
    c20 = A[0, 1] * A[1, 2] - A[0, 2] * A[1, 1]
    c21 = A[0, 2] * A[1, 0] - A[0, 0] * A[1, 2]
    c22 = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    det = A[0, 0] * c00 + A[0, 1] * c01 + A[0, 2] * c02
    x0 = c00 * b[0] + c10 * b[1] + c20 * b[2]
    x1 = c01 * b[0] + c11 * b[1] + c21 * b[2]
    x2 = c02 * b[0] + c12 * b[1] + c22 * b[2]
    import jax.numpy as jnp

    return jnp.stack([x0, x1, x2]) / det
