"""The pooled regression's crystal coefficients: an exact change of variables (regress.pooling)."""

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayes_sc.regress.pooling import _apply_sigma_inv, conditional_coefficients


def test_woodbury_solve_matches_dense_with_singular_profile_covariance(rng):
    n, K = 30, 5
    var = rng.uniform(0.5, 2.0, n)
    B = rng.normal(size=(n, K))
    v = rng.normal(size=(K, 1))
    S = 3.0 * v @ v.T  # rank 1: a slope of zero on every other covariate
    X = rng.normal(size=(n, 4))
    dense = np.linalg.solve(np.diag(var) + B @ S @ B.T, X)
    np.testing.assert_allclose(_apply_sigma_inv(var, B, S, X), dense, rtol=1e-10, atol=1e-12)


def _theta_fn(model):
    f = model.compile_fn(model["theta"], inputs=[model["c_z"]], on_unused_input="ignore")
    return lambda z: f({"c_z": z})


def _pooled_model(mean, sd, H, h):
    with pm.Model(coords={"crystal": range(H.shape[0]), "coefficient": range(H.shape[-1])}) as m:
        theta = conditional_coefficients(
            "c", pt.as_tensor(mean), pt.as_tensor(sd), H, h, dims=("crystal", "coefficient")
        )
        pm.Deterministic("theta", theta, dims=("crystal", "coefficient"))
    return m


def _problem(rng, scale=1.0):
    P = 3
    mean, sd = rng.normal(size=P), rng.uniform(0.2, 1.5, P)
    A = rng.normal(size=(2, 6, P))
    H = scale * np.einsum("kni,knj->kij", A, A)  # two crystals' informations (SPD)
    h = np.einsum("kij,kj->ki", H, rng.normal(size=(2, P)))  # θ̂ = H⁻¹ h of order 1
    return mean, sd, H, h


def test_density_is_the_prior_of_theta_times_the_jacobian(rng):
    """logp(z) = log N(θ(z); mean, sd) + log |det ∂θ/∂z|, the Jacobian by finite differences."""
    mean, sd, H, h = _problem(rng)
    model = _pooled_model(mean, sd, H, h)
    theta_of = _theta_fn(model)
    logp = model.compile_logp()
    z = rng.normal(size=(2, 3))
    theta = theta_of(z)
    expected = -0.5 * np.sum(((theta - mean) / sd) ** 2 + np.log(2 * np.pi * sd**2))
    eps = 1e-6
    for k in range(2):  # crystals are independent blocks
        J = np.empty((3, 3))
        for i in range(3):
            dz = np.zeros_like(z)
            dz[k, i] = eps
            J[:, i] = (theta_of(z + dz)[k] - theta_of(z - dz)[k]) / (2 * eps)
        expected += np.linalg.slogdet(J)[1]
    assert np.isclose(logp({"c_z": z}), expected, rtol=1e-7)


def test_limits_are_the_non_centred_and_the_centred_forms(rng):
    mean, sd, H, h = _problem(rng)
    z = rng.normal(size=(2, 3))
    # No data: θ = mean + sd z (non-centred).
    model = _pooled_model(mean, sd, 0.0 * H, 0.0 * h)
    theta = _theta_fn(model)(z)
    np.testing.assert_allclose(theta, mean + sd * z, rtol=1e-10)
    # Data far more precise than the prior: θ → θ̂ + H^{-½} z, θ̂ = H⁻¹ h (centred on the data).
    mean, sd, H, h = _problem(rng, scale=1e8)
    model = _pooled_model(mean, sd, H, h)
    theta = _theta_fn(model)(z)
    for k in range(2):
        L = np.linalg.cholesky(H[k])
        target = np.linalg.solve(H[k], h[k]) + np.linalg.solve(L.T, z[k])
        # the prior's pull is ~1/(sd² H) ≲ 1e-6; the offset H^{-½} z is ~1e-4
        np.testing.assert_allclose(theta[k], target, rtol=0, atol=1e-5)
        assert np.abs(theta[k] - np.linalg.solve(H[k], h[k])).max() > 1e-5
