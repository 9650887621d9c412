"""Sampling a PyMC model: one entry point for every NUTS backend, timed and recorded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import xarray as xr

from .. import __version__
from ..io.h5util import atomic_path

SAMPLERS = ("numpyro", "blackjax", "nutpie", "pymc")


def enable_parallel_chains(chains: int) -> None:
    """Let numpyro run ``chains`` chains in parallel on the CPU cores (call before JAX starts)."""
    # XLA must see several host devices before JAX initialises, or numpyro runs the chains
    # one after another on a single device (STACK_NOTES).
    flag = f"--xla_force_host_platform_device_count={max(chains, os.cpu_count() or 1)}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def _chain_method(chains: int) -> str:
    """numpyro's way to run ``chains`` chains: one per device, or all on one accelerator.

    On the CPU the host devices are the cores (:func:`enable_parallel_chains`); one GPU is one
    device, where ``"parallel"`` would fall back to running the chains one after another, and
    ``"vectorized"`` runs them together in each kernel launch instead.
    """
    import jax

    if jax.default_backend() != "cpu" and jax.device_count() < chains:
        return "vectorized"
    return "parallel"


def hessian_inverse_mass(model, initvals: dict | None = None, chunk: int = 64,
                         max_variance: float = 1e4):  # fmt: skip
    """numpyro's starting inverse mass matrix: 1 / the diagonal of the negative log density's
    Hessian at the model's initial point (with ``initvals``), in the unconstrained space and
    numpyro's order (the value variables flattened one after another), at most
    ``max_variance``; entries where the density is not convex there get 1.

    Without it NUTS runs its first ~100 warm-up iterations on the identity: with thousands of
    windows pinning some parameters to 10⁻³ of their prior scale that is a step of ~10⁻³ and
    1023 leapfrog steps per iteration, the better part of a scan's sampling time. Weakly
    curved entries keep their large variances: capping them at the identity's 1 left the ψ
    field's coefficients, whose posterior variance is ~140 sampling units², at 1, and the first
    100 warm-up iterations at tree depth 10 (docs/benchmarks.md, session 32).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from pymc.initial_point import make_initial_point_fn
    from pymc.sampling.jax import get_jaxified_logp

    point = make_initial_point_fn(
        model=model, overrides=initvals, jitter_rvs=set(), return_transformed=True
    )(0)
    values = [np.asarray(point[v.name], float) for v in model.value_vars]
    shapes = [v.shape for v in values]
    cuts = np.cumsum([v.size for v in values])[:-1]
    x0 = jnp.asarray(np.concatenate([v.ravel() for v in values]))
    potential = get_jaxified_logp(model, negative_logp=False)  # −log p, despite the name

    def unflat(x):
        return [p.reshape(s) for p, s in zip(jnp.split(x, cuts), shapes, strict=True)]

    grad = jax.grad(lambda x: potential(unflat(x)))
    column = jax.jit(jax.vmap(lambda v: jax.jvp(grad, (x0,), (v,))[1]))
    n = x0.size
    diag = np.empty(n)
    for lo in range(0, n, chunk):
        idx = np.arange(lo, min(lo + chunk, n))
        basis = np.zeros((chunk, n))
        basis[np.arange(idx.size), idx] = 1.0
        diag[idx] = np.asarray(column(jnp.asarray(basis)))[np.arange(idx.size), idx]
    ok = np.isfinite(diag) & (diag > 0.0)
    inverse = np.ones(n)
    inverse[ok] = 1.0 / np.maximum(diag[ok], 1.0 / max_variance)
    return inverse


def sample(
    model,
    *,
    sampler: str = "numpyro",
    chains: int = 2,
    draws: int = 1000,
    tune: int = 1000,
    seed: int = 0,
    target_accept: float = 0.9,
    progress: bool = True,
    initvals: dict | None = None,
    dense_mass: bool = False,
    initial_mass: str = "identity",
) -> xr.DataTree:
    """Draw posterior samples of ``model`` with NUTS.

    Parameters
    ----------
    model
        The PyMC model.
    sampler
        ``"numpyro"`` (default; JAX), ``"blackjax"`` (JAX), ``"nutpie"`` or ``"pymc"``.
    chains, draws, tune
        Chains, kept draws per chain and warm-up draws per chain.
    seed
        Random seed: the same model, data and seed give identical draws.
    target_accept
        NUTS target acceptance probability.
    progress
        Show the sampler's progress bar.
    initvals
        Optional starting values by variable name.
    dense_mass
        Adapt a dense mass matrix (numpyro, blackjax): worth it for small, strongly correlated
        posteriors (a crop), too costly for thousands of parameters.
    initial_mass
        numpyro's inverse mass matrix before its first adaptation window: ``"identity"``
        (numpyro's default) or ``"hessian"`` (:func:`hessian_inverse_mass`; for posteriors
        whose parameters are pinned far below their prior scale, as the X-ray model's).

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data``; the
        attributes record the sampler, settings, seed, sampling time [s] and package version.
    """
    import pymc as pm

    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if sampler in ("numpyro", "blackjax"):
        enable_parallel_chains(chains)
    kwargs = dict(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=progress,
                  target_accept=target_accept, model=model, initvals=initvals)  # fmt: skip
    if sampler != "pymc":
        kwargs["nuts_sampler"] = sampler
    # Start every chain at the model's initial point (first estimates): PyMC's default jitter of
    # ±1 in the unconstrained space throws sharply peaked posteriors (a_AL: sd 0.001 nm) far
    # from their mode, where NUTS may never find it.
    if sampler == "numpyro":
        kwargs["nuts"] = {"chain_method": _chain_method(chains), "jitter": False}
        if dense_mass:
            kwargs["nuts"]["dense_mass"] = True
        elif initial_mass == "hessian":
            kwargs["nuts"]["inverse_mass_matrix"] = hessian_inverse_mass(model, initvals)
        elif initial_mass != "identity":
            raise ValueError(f"unknown initial_mass {initial_mass!r}; use identity or hessian")
    elif sampler == "blackjax":
        kwargs["nuts"] = {"jitter": False}
    elif sampler == "pymc":
        kwargs["init"] = "adapt_diag"
    t0 = time.perf_counter()
    tree = pm.sample(**kwargs)
    elapsed = time.perf_counter() - t0
    tree.attrs.update(
        sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
        target_accept=target_accept, sampling_time_s=elapsed, bayes_sc_version=__version__,
    )  # fmt: skip
    tree["sample_stats"].attrs["sampling_time_s"] = elapsed
    return tree


def write_posterior(tree: xr.DataTree, path) -> Path:
    """Write ``tree`` to netCDF under a temporary name, then rename (no partial file)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tree.to_netcdf(tmp, engine="h5netcdf")
    return path
