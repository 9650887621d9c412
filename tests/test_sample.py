"""How numpyro runs the chains: in parallel on the CPU's cores, vectorised on one accelerator."""

import jax

from bayes_sc.inference.sample import _chain_method


def test_chains_run_in_parallel_on_the_cpu():
    assert jax.default_backend() == "cpu"
    assert _chain_method(2) == "parallel"


def test_chains_are_vectorised_on_a_single_accelerator(monkeypatch):
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    monkeypatch.setattr(jax, "device_count", lambda: 1)
    assert _chain_method(2) == "vectorized"
    monkeypatch.setattr(jax, "device_count", lambda: 4)  # one device per chain
    assert _chain_method(2) == "parallel"


def test_hessian_inverse_mass_is_the_curvature_where_sampling_starts():
    """1/H_ii at the initial point, numpyro's order, unconstrained space; weakly curved
    directions keep their large variance up to ``max_variance``; where the density is not
    convex, 1."""
    import numpy as np
    import pymc as pm

    from bayes_sc.inference.sample import hessian_inverse_mass

    with pm.Model() as m:
        pm.Normal("pinned", 0.0, 0.01, shape=3)  # H = 1e4
        pm.Normal("loose", 0.0, 10.0)  # H = 0.01: variance 100, wider than the identity's 1
        pm.HalfNormal("scale", 0.1)  # log transform: H = 2e^{2u}/σ², PyMC starts at u = log σ
        pm.Normal("flat", 0.0, 1e3)  # H = 1e-6: capped at max_variance
        # -log p = log(1 + x²) + c: H = 2(1 - x²)/(1 + x²)² < 0 at x = 10 (not convex): 1
        pm.StudentT("tail", nu=1, mu=0.0, sigma=1.0, initval=10.0)
    inv = hessian_inverse_mass(m, chunk=2)  # chunks smaller than the parameter count
    np.testing.assert_allclose(inv, [1e-4, 1e-4, 1e-4, 100.0, 0.5, 1e4, 1.0], rtol=1e-9)
    inv = hessian_inverse_mass(m, initvals={"pinned": np.array([0.0, 0.005, 0.0])})
    np.testing.assert_allclose(inv[:3], 1e-4, rtol=1e-9)  # quadratic: same curvature
