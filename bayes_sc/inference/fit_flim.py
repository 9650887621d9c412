"""``bayes-sc fit --model flim``: one FLIM image → spatial posterior of τ (SPEC §7)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import xarray as xr

from .sample import enable_parallel_chains, sample

log = logging.getLogger(__name__)


def prepare_flim(reduced: Path, preset: dict, *, bin_pixels=1, merge=None, crystal_mask=None):
    """Load one FLIM image for the model: ``(data, start, centred)``.

    ``data`` holds the merged histograms of the crystal pixels, ``start`` the per-pixel ML fits
    (starting values and sampling units, never priors), ``centred`` the parameterisation of the
    τ field. Parameters as :func:`fit_flim`.
    """
    from ..baseline.flim import fit_global, fit_pixels
    from ..modeling.flim import tau_centred
    from ..modeling.flim_data import default_merge, load_flim

    opts = preset.get("flim", {})
    data = load_flim(
        reduced, crystal_mask=crystal_mask, bin_pixels=bin_pixels, merge=merge,
        min_photons=int(opts.get("min_photons", 20)),
        merged_bin_ps=float(opts.get("merged_bin_ps", 800.0)),
    )  # fmt: skip
    glob = fit_global(data)  # shared IRF parameters: they do not depend on the merging
    if merge is None:  # merged bins of at most merged_bin_ps and at most τ/2.5 of the crystal
        width_ps = min(float(opts.get("merged_bin_ps", 800.0)), 400.0 * glob["tau_ns"])
        if default_merge(data.n_bins, data.bin_ns * 1e3, width_ps) != data.merge:
            data = load_flim(
                reduced, crystal_mask=crystal_mask, bin_pixels=bin_pixels, merged_bin_ps=width_ps,
                min_photons=int(opts.get("min_photons", 20)),
            )  # fmt: skip
    start = fit_pixels(data, glob)
    centred = tau_centred(preset["priors"]["tau"], start)
    log.info(
        "FLIM model: %d crystal pixels, %d time bins of %d x %.4g ps, IRF %s, tau %s",
        data.graph.n, data.counts.shape[1], data.merge, data.bin_ns * 1e3,
        "measured" if data.irf is not None else "modelled", "centred" if centred else "non-centred",
    )  # fmt: skip
    return data, start, centred


def fit_flim(
    reduced: Path, preset: dict, *, sampler="numpyro", chains=2, draws=2000, tune=1000, seed=0,
    progress=True, posterior_predictive=False, bin_pixels=1, merge=None, crystal_mask=None,
    target_accept=None,
) -> xr.DataTree:  # fmt: skip
    """Sample the FLIM model of one image and return the DataTree.

    Parameters
    ----------
    reduced
        reduced.h5 with ``/flim``.
    preset
        Material preset (priors; ``[flim] merged_bin_ps, min_photons``).
    bin_pixels
        Spatial binning k (k × k image pixels summed) for images with few photons per pixel.
    merge
        Native time bins per merged bin (default: bins of at most the preset's ``[flim]
        merged_bin_ps`` and at most τ/2.5 of the crystal's mono-exponential τ, which keeps the
        Fisher information on τ within ~1.5 % of the native bins').
    crystal_mask
        Optional (ny, nx) bool mask of crystal pixels on the (binned) image.
    target_accept
        NUTS target acceptance (default: the preset's ``[flim] target_accept``, or
        ``target_accept_modelled_irf`` when the IRF is modelled; else 0.9).
    Other parameters as :func:`bayes_sc.inference.sample.sample`.
    """
    from ..modeling.flim import PIX, build_flim_model
    from .fit import add_likelihood_summary, attach_pixel_coords, posterior_predictive_draws

    enable_parallel_chains(chains)  # before anything starts JAX (the first fits do)
    data, start, centred = prepare_flim(
        reduced, preset, bin_pixels=bin_pixels, merge=merge, crystal_mask=crystal_mask
    )
    model = build_flim_model(data, preset, start)
    if target_accept is None:
        key = "target_accept" if data.irf is not None else "target_accept_modelled_irf"
        target_accept = float(preset.get("flim", {}).get(key, 0.9))
    tree = sample(model, sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
                  progress=progress, target_accept=target_accept)  # fmt: skip
    if posterior_predictive:
        tree["posterior_predictive"] = posterior_predictive_draws(tree, model, seed, progress)
    ok = np.asarray(start["ok"], bool)
    add_likelihood_summary(tree, PIX, {
        "tau_ml": (np.where(ok, start["tau"], np.nan), "ns",
                   "per-pixel Poisson ML lifetime (IRF, shift, background at the global fit)"),
        "tau_ml_se": (np.where(ok, start["tau_sd"], np.nan), "ns",
                      "its standard error (observed information)"),
    })  # fmt: skip
    tree.attrs.update(
        model="flim", n_pixels=data.graph.n, source=str(reduced), bin_pixels=data.bin_pixels,
        merge=data.merge, irf="measured" if data.irf is not None else "modelled",
        tau_centred=int(centred),
    )  # fmt: skip
    return attach_pixel_coords(tree, PIX, data.coords())
