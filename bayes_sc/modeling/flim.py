"""The FLIM model: every crystal pixel's decay in one spatial posterior, on raw photon counts.

Per crystal pixel p: lifetime τ_p [ns] (a BYM2 field of log τ over the image's 4-neighbour
graph, SPEC §6) and decay photons A_p (independent, log-normal prior). Shared: the IRF (the
measured one delayed by ``irf_shift`` [ps], or a modelled exponentially modified Gaussian whose
mean arrival time ``irf_mean``, FWHM and tail are learned) and the background b [counts per
native bin per pixel].
Expected counts of merged bin J (SPEC §5, exact for a piecewise-constant IRF, sub-bin shifts
included; :func:`bayes_sc.physics.flim_binned.flim_expected_merged`)::

    μ_pJ = A_p · Σ_{j in J} (IRF(t - s) ⊛ periodic decay(τ_p))_j + b · M_J

and ``counts_pJ ~ Poisson(μ_pJ)``; nothing is subtracted from the counts. With a modelled IRF
``irf_shift`` is reported as the modelled pulse's centre [ps after the start of the period].
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..physics.flim import emg_irf
from ..physics.flim_binned import flim_expected_merged
from .flim_data import FlimData
from .spatial import field

PIX = "flim_pixel"
TIME = "flim_time"


def tau_centred(prior: dict, start: dict) -> bool:
    """Parameterisation of the log τ field: the preset's ``field.centred``, or for ``"auto"``
    centred when the per-pixel ML standard errors of log τ (median) are below the spread of the
    per-pixel estimates (1.4826 × MAD): the pixels' own photons then pin the field."""
    choice = prior["field"]["centred"]
    if choice != "auto":
        return bool(choice)
    log_tau = np.log(start["tau"][start["ok"]])
    se = (start["tau_sd"] / start["tau"])[start["ok"]]
    if log_tau.size < 3:
        return False
    spread = 1.4826 * np.median(np.abs(log_tau - np.median(log_tau)))
    return bool(np.median(se) < spread)


def _scaled_log_normal(name, mu, sigma, centre, scale, dims):
    """``log name ~ Normal(mu, sigma)`` sampled as ``z = (log name - centre) / scale``.

    ``centre`` and ``scale`` (per pixel: the first estimate and its standard error) only change
    the coordinates NUTS works in, never the prior (a linear change of variables).
    """
    z = pm.Normal(f"{name}_z", (mu - centre) / scale, sigma / scale, dims=dims,
                  initval=np.zeros(np.shape(centre)))  # fmt: skip
    return pm.Deterministic(name, pt.exp(centre + scale * z), dims=dims)


def build_flim_model(data: FlimData, preset: dict, start: dict, tau_field=None) -> pm.Model:
    """The PyMC model of one FLIM image (see module docstring).

    Parameters
    ----------
    data
        Merged histograms of the crystal pixels, IRF, pixel graph.
    preset
        Material preset (``[priors.tau]``, ``flim_amplitude``, ``flim_background``,
        ``irf_shift`` or ``irf_mean/fwhm/tail``).
    start
        Per-pixel ML fits (:func:`bayes_sc.baseline.flim.fit_pixels`): starting values and the
        sampling coordinates of the amplitudes, never priors.
    tau_field
        Optional ``f(graph, tau_start_ns, centred) -> tau [ns]`` replacing the spatial prior on
        τ (the joint model's regression law, :mod:`.joint`); called inside the model.
    """
    pr = preset["priors"]
    g = data.graph
    glob = start["global"]
    coords = {PIX: np.arange(g.n), TIME: np.arange(data.counts.shape[1])}
    # Sampling units near the posterior sds (the per-pixel standard errors of log τ; 1/√counts
    # for log-amplitudes and the log background; ~1 % for the modelled IRF's log widths): NUTS's
    # first adaptation windows start from a unit mass matrix, and parameters pinned to 1e-3 of
    # that would hold the tree depth at 10 until it adapts.
    se_log_tau = (start["tau_sd"] / start["tau"])[start["ok"]]
    tau_prior = dict(pr["tau"])
    tau_prior["field"] = {"sample_unit": float(np.clip(np.median(se_log_tau), 1e-3, 1.0))
                          if se_log_tau.size else 1.0, **pr["tau"]["field"]}  # fmt: skip
    with pm.Model(coords=coords) as model:
        tau_start = np.where(start["ok"], start["tau"], glob["tau_ns"])
        centred = tau_centred(pr["tau"], start)
        if tau_field is None:
            # mean and scale of log τ in units ~ their posterior sds (1/√n of a pixel's)
            tau = field("tau", tau_prior, g, tau_start, dims=PIX, centred=centred,
                        hyper_scale=1.0 / np.sqrt(g.n))  # fmt: skip
        else:
            tau = tau_field(g, tau_start, centred)
        tau = pm.Deterministic("tau", tau, dims=PIX)
        photons = data.counts.sum(axis=1)
        a0 = np.log(np.maximum(np.where(start["ok"], start["amplitude"], photons), 1.0))
        amp = _scaled_log_normal("flim_amplitude", pr["flim_amplitude"]["mu"],
                                 pr["flim_amplitude"]["sigma"], a0,
                                 1.0 / np.sqrt(np.maximum(photons, 1.0)), PIX)  # fmt: skip
        b0 = max(glob["background"], 1e-6)
        bg_counts = b0 * data.n_bins * g.n
        pb = pr["flim_background"]
        bg = _scaled_log_normal("flim_background", pb["mu"], pb["sigma"], np.log(b0),
                                1.0 / np.sqrt(max(bg_counts, 1.0)), None)  # fmt: skip
        if data.irf is not None:
            p = pr["irf_shift"]
            shift = pm.Normal("irf_shift", p["mu"], p["sigma"], initval=glob["irf_shift_ps"])
            irf = data.irf
        else:
            # The pulse's mean arrival time (Gaussian centre + tail) is what the decays pin
            # first; sampled as such, an unresolved pulse leaves an axis-aligned ridge in (mean,
            # log tail) rather than the curved centre = mean - tail one that NUTS diverges on.
            mean0 = glob["irf_centre_ps"] + glob["irf_tail_ps"]
            mean = pm.Normal("irf_mean", mean0, pr["irf_mean"]["sigma"], initval=mean0)
            fwhm = _scaled_log_normal("irf_fwhm", pr["irf_fwhm"]["mu"], pr["irf_fwhm"]["sigma"],
                                      np.log(glob["irf_fwhm_ps"]), 0.01, None)  # fmt: skip
            tail = _scaled_log_normal("irf_tail", pr["irf_tail"]["mu"], pr["irf_tail"]["sigma"],
                                      np.log(glob["irf_tail_ps"]), 0.03, None)  # fmt: skip
            centre = mean - tail
            irf = emg_irf(data.n_bins, data.bin_ns, centre / 1e3, fwhm / 1e3, tail / 1e3)
            irf = pt.specify_shape(irf, (data.n_bins,))
            pm.Deterministic("irf_shift", centre)
            shift = pt.as_tensor_variable(0.0)
        mu = flim_expected_merged(irf, data.bin_ns, data.period_ns, tau, amp, shift, bg, data.merge)
        pm.Poisson("flim_counts", mu=mu, observed=data.counts, dims=(PIX, TIME))
    return model
