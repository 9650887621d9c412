"""The errors-in-variables likelihood: profiles integrated out exactly (bayes_sc.regress.eiv).

Oracles: scipy's dense multivariate normal for the density, a Monte Carlo over the profile
coefficients themselves (w ~ N(m, C), then y | w) for the distribution it claims to be.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from scipy.stats import multivariate_normal

from bayes_sc.regress.eiv import column_space, spline_normal_logp
from bayes_sc.regress.model import _eiv_likelihood


def _spd(rng, k):
    a = rng.standard_normal((k, 3 * k))
    return a @ a.T / (3 * k)


def _problem(rng, n, k):
    """A design (n, k), an SPD (k, k), diagonal variances and residuals (n,)."""
    return rng.uniform(0, 1, (n, k)), _spd(rng, k), rng.uniform(0.05, 2.0, n), rng.normal(0, 1.5, n)


def test_spline_logp_equals_dense_multivariate_normal(rng):
    n, k = 50, 6
    B, S, var, resid = _problem(rng, n, k)
    got = spline_normal_logp(resid, var, B, S).eval()
    want = multivariate_normal(np.zeros(n), np.diag(var) + B @ S @ B.T).logpdf(resid)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # S singular (every slope 0): the diagonal Normal
    got0 = spline_normal_logp(resid, var, B, np.zeros((k, k))).eval()
    np.testing.assert_allclose(got0, multivariate_normal(np.zeros(n), np.diag(var)).logpdf(resid))


def test_integrated_logp_is_the_profiled_one_times_an_occam_factor(rng):
    """What integrating the profiles out under their flat prior does to the slopes (module
    docstring): the quadratic form is the minimum over the profile offsets δ_c = w_c − m_c of
    Σ r'ᵢ²/dᵢ + Σ_c δ_cᵀ C_c⁻¹ δ_c (r' = r − Σ_c β_c B δ_c), solved densely here; the rest is
    log det D and the factor det(I + M S)^(−½), which falls as the slopes grow."""
    n, k = 40, 5
    B, _, var, resid = _problem(rng, n, k)
    covs, beta = [_spd(rng, k), _spd(rng, k)], np.array([0.8, -1.7])
    S = sum(b**2 * C for b, C in zip(beta, covs, strict=True))
    # normal equations of the stacked offsets δ = (δ_1, δ_2): A δ = g
    X = np.hstack([b * B for b in beta])  # (n, 2k)
    prior_prec = np.zeros((2 * k, 2 * k))
    for c, C in enumerate(covs):
        prior_prec[c * k : (c + 1) * k, c * k : (c + 1) * k] = np.linalg.inv(C)
    A = X.T @ (X / var[:, None]) + prior_prec
    delta = np.linalg.solve(A, X.T @ (resid / var))
    r = resid - X @ delta
    quad_min = r @ (r / var) + delta @ prior_prec @ delta
    want = -0.5 * (quad_min + np.log(var).sum() + n * np.log(2 * np.pi))
    M = B.T @ (B / var[:, None])
    occam = -0.5 * np.linalg.slogdet(np.eye(k) + M @ S)[1]
    np.testing.assert_allclose(
        spline_normal_logp(resid, var, B, S).eval(), want + occam, rtol=1e-10
    )
    assert -0.5 * np.linalg.slogdet(np.eye(k) + M @ (4 * S))[1] < occam  # slopes doubled


def test_spline_logp_gradient_matches_finite_differences(rng):
    B, C, var, resid = _problem(rng, 12, 3)
    g = pt.dscalar("g")
    lp = spline_normal_logp(resid, var, B, g**2 * C)
    f = pytensor.function([g], [lp, pytensor.grad(lp, g)])
    h = 1e-6
    fd = (f(0.7 + h)[0] - f(0.7 - h)[0]) / (2 * h)
    np.testing.assert_allclose(f(0.7)[1], fd, rtol=1e-6)


def test_column_space_keeps_the_covariance_of_a_rank_deficient_design(rng):
    """Pixels that see only some spline coefficients: B has fewer independent columns than
    coefficients; the reduced design gives the same B S Bᵀ with full column rank."""
    B = rng.uniform(0, 1, (30, 4)) @ np.array([[1, 0, 0.5, 0, 1, 0], [0, 1, 0.5, 0, 0, 1],
                                               [0, 0, 0, 1, 1, 0], [1, 1, 0, 0, 0, 0]])  # fmt: skip
    C = _spd(rng, 6)
    B_red, (C_red,) = column_space(B, [C])
    assert B_red.shape == (30, 4)
    np.testing.assert_allclose(B_red @ C_red @ B_red.T, B @ C @ B.T, atol=1e-12)


def test_random_draws_have_the_density_the_logp_claims(rng):
    """Draws of the CustomDist's random (profiles drawn, then pixel noise) have the mean and
    covariance of the Normal whose density logp computes: 20 000 draws, sd of a sample
    covariance entry ≈ √(2/20 000) of its scale, tolerance 5 of those."""
    n = 6
    B = rng.uniform(0, 1, (n, 3))
    covs = [_spd(rng, 3), _spd(rng, 3)]
    logp, random = _eiv_likelihood([(0, slice(0, n), B, covs)])
    mu = rng.normal(0, 1, n)
    var = rng.uniform(0.2, 0.5, n)
    slopes = np.array([[1.3, -0.8]])
    draws = random(mu, var, slopes, rng=np.random.default_rng(3), size=(20000, n))
    cov = np.diag(var) + B @ (1.3**2 * covs[0] + 0.8**2 * covs[1]) @ B.T
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(draws.mean(0) - mu) < 5 * np.sqrt(np.diag(cov) / 20000))
    assert np.all(np.abs(np.cov(draws, rowvar=False) - cov) < 5 * scale * np.sqrt(2 / 20000))
    y = draws[0]
    got = logp(y, mu, var, slopes).eval()
    np.testing.assert_allclose(got, multivariate_normal(mu, cov).logpdf(y), rtol=1e-10)


def test_two_crystals_are_independent_blocks(rng):
    b0, b1 = rng.uniform(0, 1, (5, 2)), rng.uniform(0, 1, (4, 3))
    segments = [(0, slice(0, 5), b0, [_spd(rng, 2), _spd(rng, 2)]),
                (1, slice(5, 9), b1, [_spd(rng, 3), _spd(rng, 3)])]  # fmt: skip
    logp, _ = _eiv_likelihood(segments)
    mu, var, y = rng.normal(0, 1, 9), rng.uniform(0.2, 1, 9), rng.normal(0, 1, 9)
    slopes = np.array([[0.5, 2.0], [-1.0, 0.3]])
    want = 0.0
    for k, seg, B, covs in segments:
        S = sum(slopes[k, c] ** 2 * C for c, C in enumerate(covs))
        want += multivariate_normal(mu[seg], np.diag(var[seg]) + B @ S @ B.T).logpdf(y[seg])
    np.testing.assert_allclose(logp(y, mu, var, slopes).eval(), want, rtol=1e-10)
