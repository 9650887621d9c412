"""Inference: run NUTS on a PyMC model with a JAX backend (numpyro by default) or nutpie,
blackjax or PyMC's own sampler, and write the ArviZ DataTree atomically."""

from .sample import SAMPLERS, sample, write_posterior

__all__ = ["SAMPLERS", "sample", "write_posterior"]
