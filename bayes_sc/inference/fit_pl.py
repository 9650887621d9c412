"""``bayes-sc fit --model pl``: one crystal's PL spectra → spatial posterior of E_peak and the
blueshift (SPEC §7)."""

from __future__ import annotations

import logging
from pathlib import Path

import xarray as xr

from .sample import enable_parallel_chains, sample

log = logging.getLogger(__name__)


def fit_pl(
    reduced: Path, preset: dict, *, sampler="numpyro", chains=2, draws=2000, tune=1000, seed=0,
    progress=True, posterior_predictive=False, crystal_mask=None, target_accept=None,
) -> xr.DataTree:  # fmt: skip
    """Sample the PL model of one crystal's spectra and return the DataTree.

    Parameters
    ----------
    reduced
        reduced.h5 with ``/pl``.
    preset
        Material preset (``[priors.E_peak]`` with its ``field`` table and the ``pl_*`` priors).
    crystal_mask
        Optional bool mask with one entry per PL point (any shape of that size): the points
        to fit.
    target_accept
        NUTS target acceptance (default 0.9).
    Other parameters as :func:`bayes_sc.inference.sample.sample`.
    """
    from ..modeling.pl import PT, build_pl_model, e_peak_centred, first_estimates
    from ..modeling.pl_data import load_pl
    from .fit import add_likelihood_summary, attach_pixel_coords, posterior_predictive_draws

    enable_parallel_chains(chains)  # before anything starts JAX
    data = load_pl(reduced, point_mask=crystal_mask)
    start = first_estimates(data, preset)
    centred = e_peak_centred(preset["priors"]["E_peak"], start)
    log.info(
        "PL model: %d points (%d graph edges, %d components), %d channels, edge distance from "
        "the %s, E_peak %s", data.n_points, len(data.graph.edges), data.graph.n_components,
        data.wavelength_nm.size, data.edge_source, "centred" if centred else "non-centred",
    )  # fmt: skip
    model = build_pl_model(data, preset, start)
    tree = sample(
        model, sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
        progress=progress, target_accept=target_accept or 0.9,
    )  # fmt: skip
    if posterior_predictive:
        tree["posterior_predictive"] = posterior_predictive_draws(tree, model, seed, progress)
    add_likelihood_summary(tree, PT, {
        "E_peak_ml": (start["E_peak"], "eV", "per-point weighted least-squares line centre"),
        "E_peak_ml_se": (start["E_peak_se"], "eV", "its standard error (scaled by the reduced "
                         "chi-square where above 1)"),
    })  # fmt: skip
    tree.attrs.update(
        model="pl", n_points=data.n_points, source=str(reduced), edge_source=data.edge_source,
        e_peak_centred=int(centred),
    )  # fmt: skip
    return attach_pixel_coords(tree, PT, data.coords())
