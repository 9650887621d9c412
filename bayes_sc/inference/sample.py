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
