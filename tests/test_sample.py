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
