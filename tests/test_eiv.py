"""The errors-in-variables likelihood: profiles integrated out exactly (bayes_sc.regress.eiv).

Oracles: scipy's dense multivariate normal for the density, a Monte Carlo over the profile
coefficients themselves (w ~ N(m, C), then y | w) for the distribution it claims to be.
"""

import numpy as np
import pytensor
from scipy.stats import multivariate_normal

from bayes_sc.regress.eiv import expand_slopes, factor_blocks, lowrank_normal_logp
from bayes_sc.regress.model import _eiv_likelihood


def _case(rng, n=40, K=(4, 3)):
    B = rng.uniform(0, 1, (n, K[0]))
    chols = [np.linalg.cholesky(np.atleast_2d(np.cov(rng.standard_normal((k, 3 * k))))) for k in K]
    B2 = rng.uniform(0, 1, (n, K[1]))
    A = np.concatenate([B @ chols[0], B2 @ chols[1]], axis=1)
    return A, chols, B, B2


def test_lowrank_logp_equals_dense_multivariate_normal(rng):
    n, k = 50, 7
    V = rng.normal(0, 0.8, (n, k))
    var = rng.uniform(0.05, 2.0, n)
    resid = rng.normal(0, 1.5, n)
    got = lowrank_normal_logp(resid, var, V).eval()
    want = multivariate_normal(np.zeros(n), np.diag(var) + V @ V.T).logpdf(resid)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_lowrank_logp_gradient_matches_finite_differences(rng):
    import pytensor.tensor as pt

    n, k = 12, 3
    A = rng.normal(0, 1, (n, k))
    var = rng.uniform(0.1, 1.0, n)
    resid = rng.normal(0, 1, n)
    g = pt.dscalar("g")
    f = pytensor.function([g], [lowrank_normal_logp(resid, var, A * g), pytensor.grad(
        lowrank_normal_logp(resid, var, A * g), g)])  # fmt: skip
    h = 1e-6
    fd = (f(0.7 + h)[0] - f(0.7 - h)[0]) / (2 * h)
    np.testing.assert_allclose(f(0.7)[1], fd, rtol=1e-6)


def test_factor_and_slope_expansion_build_the_marginal_covariance(rng):
    """V Vᵀ = Σ_c β_c² B_c C_c B_cᵀ: the covariance of Σ_c β_c B_c (w_c − m_c)."""
    A, chols, B, B2 = _case(rng)
    assert np.allclose(factor_blocks(B, chols[:1]), B @ chols[0])
    E = expand_slopes([4, 3])
    assert E.shape == (2, 7) and np.allclose(E.sum(1), [4, 3]) and np.allclose(E.sum(0), 1)
    beta = np.array([1.7, -0.4])
    V = A * (beta @ E)[None, :]
    C = [L @ L.T for L in chols]
    want = beta[0] ** 2 * B @ C[0] @ B.T + beta[1] ** 2 * B2 @ C[1] @ B2.T
    np.testing.assert_allclose(V @ V.T, want, rtol=1e-12, atol=1e-12)


def test_random_draws_have_the_density_the_logp_claims(rng):
    """Draws of the CustomDist's random (profiles drawn, then pixel noise) have the mean and
    covariance of the Normal whose density logp computes: 20 000 draws, sd of a sample
    covariance entry ≈ √(2/20 000) of its scale, tolerance 5 of those."""
    n = 6
    A, chols, B, B2 = _case(rng, n=n, K=(2, 2))
    E = expand_slopes([2, 2])
    segments = [(0, slice(0, n), A, E)]
    logp, random = _eiv_likelihood(segments)
    mu = rng.normal(0, 1, n)
    var = rng.uniform(0.2, 0.5, n)
    slopes = np.array([[1.3, -0.8]])
    draws = random(mu, var, slopes, rng=np.random.default_rng(3), size=(20000, n))
    V = A * (slopes[0] @ E)[None, :]
    cov = np.diag(var) + V @ V.T
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.all(np.abs(draws.mean(0) - mu) < 5 * np.sqrt(np.diag(cov) / 20000))
    assert np.all(np.abs(np.cov(draws, rowvar=False) - cov) < 5 * scale * np.sqrt(2 / 20000))
    y = draws[0]
    got = logp(y, mu, var, slopes).eval()
    np.testing.assert_allclose(got, multivariate_normal(mu, cov).logpdf(y), rtol=1e-10)


def test_two_crystals_are_independent_blocks(rng):
    A1, *_ = _case(rng, n=5, K=(2, 2))
    A2, *_ = _case(rng, n=4, K=(3, 1))
    segments = [(0, slice(0, 5), A1, expand_slopes([2, 2])), (1, slice(5, 9), A2,
                expand_slopes([3, 1]))]  # fmt: skip
    logp, _ = _eiv_likelihood(segments)
    mu, var, y = rng.normal(0, 1, 9), rng.uniform(0.2, 1, 9), rng.normal(0, 1, 9)
    slopes = np.array([[0.5, 2.0], [-1.0, 0.3]])
    want = 0.0
    for k, seg, A, E in segments:
        V = A * (slopes[k] @ E)[None, :]
        want += multivariate_normal(mu[seg], np.diag(var[seg]) + V @ V.T).logpdf(y[seg])
    np.testing.assert_allclose(logp(y, mu, var, slopes).eval(), want, rtol=1e-10)
