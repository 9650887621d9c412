"""The PL model: every point's emission line in one spatial posterior, on raw CCD counts.

Per point p (SPEC §5): a Gaussian line in energy with centre ``E_peak_p`` [eV], FWHM
``pl_fwhm_p`` [eV] and integrated counts ``pl_amplitude_p`` [counts], observed through the
Jacobian |dE/dλ| on the spectrometer's channels (:func:`bayes_sc.physics.pl.pl_expected_counts`),
plus a flat background ``pl_background_p`` [counts per channel]::

    μ_pc = pl_amplitude_p · line(E_c; E_peak_p, pl_fwhm_p) · |dE/dλ|_c Δλ_c + pl_background_p

Noise (CCD): shot noise of the photoelectrons times the conversion gain g [counts per
photoelectron] plus Gaussian read noise r [counts rms], i.e. ``counts ~ Normal(μ, √(g·μ + r²))``
(μ floored at 0 in the variance). At the ≥ 10² counts per channel of a PL line this normal
approximation of the scaled Poisson is exact to well under its own sd, and it takes float,
bias-subtracted or integer files alike (read noise makes counts negative at times; nothing is
subtracted from the data). g and r are learned: g absorbs an unknown ADU gain or an EMCCD's
excess-noise factor, where a fixed g = 1 would make every interval wrong by √g.

Priors: ``E_peak`` is a BYM2 field over the points' Delaunay graph (SPEC §6), centred when the
spectra pin each point's E_peak more tightly than it varies across the crystal. The linewidth
is per point with an independent log-normal prior: inhomogeneous broadening changes with
disorder (towards the edges), every spectrum pins its own width to ~1 %, and a global width
would leave structured residuals at these counts; a hierarchical width would add a funnel on
crystals whose width is uniform. Amplitudes and backgrounds are independent per point.

Derived per draw: ``E_peak`` [eV] and ``blueshift = 1000 (E_peak − E_centre)`` [meV],
E_centre the mean E_peak of the innermost quarter of edge distances (SPEC §5).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.optimize import least_squares

from ..errors import InputError
from ..physics.pl import energy_ev, pl_expected_counts
from .pl_data import PlData
from .spatial import field

PT = "pl_point"
CH = "pl_channel"
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def _spectrum_fit(lam_nm, counts, start, bounds, read_sd):
    """Weighted least-squares fit of one spectrum; returns (params, standard errors).

    Parameters are (E_peak [eV], log FWHM [log eV], log amplitude [log counts], background
    [counts per channel]); weights 1/√(max(counts, 0) + read_sd²) (shot + read noise).
    """
    sd = np.sqrt(np.maximum(counts, 0.0) + read_sd**2)

    def resid(p):
        mu = pl_expected_counts(lam_nm, p[0], np.exp(p[1]), np.exp(p[2]), p[3])
        return (counts - mu) / sd

    res = least_squares(resid, np.clip(start, *bounds), bounds=bounds, x_scale="jac")
    dof = max(counts.size - 4, 1)
    scale2 = max(float(res.fun @ res.fun) / dof, 1.0)
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * scale2
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        se = np.full(4, np.nan)
    return res.x, se


def first_estimates(data: PlData, preset: dict) -> dict:
    """Per-spectrum starting values and standard errors (weighted least squares, scipy).

    Returns a dict of (N,) arrays ``E_peak`` [eV], ``fwhm`` [eV], ``amplitude`` [counts],
    ``background`` [counts per channel], their standard errors ``*_se`` (on the log scale for
    fwhm and amplitude) and the scalar ``read_sd`` [counts]. Starting values and sampling
    coordinates only, never priors.

    Raises
    ------
    InputError
        The crystal's median E_peak lies outside the preset's ``E_peak`` range.
    """
    pr = preset["priors"]
    lam = data.wavelength_nm
    energy = energy_ev(lam)
    e_lo, e_hi = pr["E_peak"].get("range", (energy.min(), energy.max()))
    w_lo, w_hi = pr["pl_fwhm"].get("range", (1e-3, 1.0))
    bounds = ([e_lo, np.log(w_lo), -5.0, -np.inf], [e_hi, np.log(w_hi), 30.0, np.inf])
    kernel = np.ones(5) / 5.0  # smooth the noise before locating the maximum
    rows = []
    for c in data.counts:  # moments: background from the lowest fifth, peak at the maximum
        bg = float(np.mean(np.sort(c)[: max(1, c.size // 5)]))
        e0 = float(energy[np.argmax(np.convolve(c, kernel, mode="same"))])
        amp = max(float(np.sum(c - bg)), 1.0)  # channels sum the density × dE to the amplitude
        rows.append([e0, pr["pl_fwhm"]["mu"], np.log(amp), bg])
    fits = [_spectrum_fit(lam, c, p, bounds, 3.0) for c, p in zip(data.counts, rows, strict=True)]
    params = np.array([f[0] for f in fits])
    se = np.array([f[1] for f in fits])
    mu = pl_expected_counts(lam, params[:, 0], np.exp(params[:, 1]), np.exp(params[:, 2]),
                            params[:, 3])  # fmt: skip
    # read noise: the residual variance beyond the shot noise (gain 1 to start)
    read_var = float(np.mean((data.counts - mu) ** 2 - np.maximum(mu, 0.0)))
    median_e = float(np.median(params[:, 0]))
    if not e_lo < median_e < e_hi:
        raise InputError(
            preset.get("_path"), f"prior range of E_peak [{e_lo}, {e_hi}] eV excludes the "
            f"spectra's peaks (median {median_e:.4g} eV): the preset does not fit these data",
        )  # fmt: skip
    fallback = np.nanmedian(np.where(se > 0, se, np.nan), axis=0)
    se = np.where(np.isfinite(se) & (se > 0), se, np.where(np.isfinite(fallback), fallback, 1.0))
    return {
        "E_peak": params[:, 0], "fwhm": np.exp(params[:, 1]), "amplitude": np.exp(params[:, 2]),
        "background": params[:, 3], "E_peak_se": se[:, 0], "fwhm_se": se[:, 1],
        "amplitude_se": se[:, 2], "background_se": se[:, 3],
        "read_sd": float(np.sqrt(max(read_var, 1.0))),
    }  # fmt: skip


def e_peak_centred(prior: dict, start: dict) -> bool:
    """Parameterisation of the E_peak field: the preset's ``field.centred``, or for ``"auto"``
    centred when the per-point standard errors (median) are below the spread of the per-point
    estimates (1.4826 × MAD): the spectra then pin the field."""
    choice = prior["field"]["centred"]
    if choice != "auto":
        return bool(choice)
    e = start["E_peak"]
    spread = 1.4826 * np.median(np.abs(e - np.median(e)))
    return bool(np.median(start["E_peak_se"]) < spread)


def _scaled(name, prior, centre, scale, dims, *, log):
    """``name`` (or its log) ``~ Normal(prior mu, prior sigma)`` sampled as
    ``z = (value − centre) / scale``: ``centre`` and ``scale`` (first estimate and its standard
    error) change only NUTS's coordinates, never the prior (a linear change of variables)."""
    centre = np.asarray(centre, float)
    z = pm.Normal(f"{name}_z", (prior["mu"] - centre) / scale, prior["sigma"] / scale, dims=dims,
                  initval=np.zeros(centre.shape))  # fmt: skip
    value = centre + scale * z
    return pm.Deterministic(name, pt.exp(value) if log else value, dims=dims)


def build_pl_model(data: PlData, preset: dict, start: dict, e_peak_field=None) -> pm.Model:
    """The PyMC model of one crystal's PL spectra (see module docstring).

    Parameters
    ----------
    data
        Spectra, point positions, edge distances, point graph (:func:`.pl_data.load_pl`).
    preset
        Material preset (``[priors.E_peak]`` with its ``field`` table, ``pl_fwhm``,
        ``pl_amplitude``, ``pl_background``, ``pl_read_noise``, ``pl_gain``).
    start
        Per-spectrum first estimates (:func:`first_estimates`): starting values and sampling
        coordinates, never priors.
    e_peak_field
        Optional ``f(graph, e_peak_start_ev, centred) -> E_peak [eV]`` replacing the spatial
        prior on E_peak (the joint model's regression law, :mod:`.joint`); called inside the
        model.
    """
    pr = preset["priors"]
    g = data.graph
    coords = {PT: np.arange(g.n), CH: data.wavelength_nm}
    e_prior = dict(pr["E_peak"])
    # the E_peak field (mean and centred coefficients) is sampled in units of its per-point
    # standard error, so NUTS's mass-matrix adaptation starts near the posterior scale
    unit = float(np.clip(np.median(start["E_peak_se"]), 1e-6, 0.05))
    e_prior["field"] = {**pr["E_peak"]["field"], "sample_unit": unit}
    inner = np.nonzero(data.inner)[0]
    with pm.Model(coords=coords) as model:
        centred = e_peak_centred(pr["E_peak"], start)
        if e_peak_field is None:
            e_peak = field("E_peak", e_prior, g, start["E_peak"], dims=PT, centred=centred)
        else:
            e_peak = e_peak_field(g, start["E_peak"], centred)
        e_peak = pm.Deterministic("E_peak", e_peak, dims=PT)
        pm.Deterministic("blueshift", 1000.0 * (e_peak - e_peak[inner].mean()), dims=PT)
        fwhm = _scaled("pl_fwhm", pr["pl_fwhm"], np.log(start["fwhm"]), start["fwhm_se"], PT,
                       log=True)  # fmt: skip
        amp = _scaled("pl_amplitude", pr["pl_amplitude"], np.log(start["amplitude"]),
                      start["amplitude_se"], PT, log=True)  # fmt: skip
        bg = _scaled("pl_background", pr["pl_background"], start["background"],
                     start["background_se"], PT, log=False)  # fmt: skip
        # the noise scalars are pinned by N × W channels: sampled near their posterior sd
        n_obs = data.counts.size
        read = _scaled("pl_read_noise", pr["pl_read_noise"], np.log(start["read_sd"]),
                       3.0 / np.sqrt(n_obs), None, log=True)  # fmt: skip
        gain = _scaled("pl_gain", pr["pl_gain"], 0.0, 3.0 / np.sqrt(n_obs), None, log=True)
        mu = pl_expected_counts(data.wavelength_nm, e_peak, fwhm, amp, bg)
        sd = pt.sqrt(gain * pt.maximum(mu, 0.0) + read**2)
        pm.Normal("pl_counts", mu=mu, sigma=sd, observed=data.counts, dims=(PT, CH))
    return model
