"""PL emission spectra (SPEC §5): a Gaussian peak in energy, observed per wavelength channel."""

from __future__ import annotations

import numpy as np

from ._xp import array_module, expand_last

HC_EV_NM = 1239.84198  # h·c [eV·nm]


def energy_ev(wavelength_nm):
    """Photon energy E = hc/λ [eV] of wavelength λ [nm]."""
    return HC_EV_NM / wavelength_nm


def channel_widths_nm(wavelength_nm):
    """Width of each spectrometer channel [nm], from the spacing of channel centres."""
    return np.abs(np.gradient(np.asarray(wavelength_nm, dtype=float)))


def pl_expected_counts(wavelength_nm, e_peak_ev, fwhm_ev, amplitude, background):
    """Expected counts per channel [counts], shape ``e_peak_ev.shape + (W,)``.

    The line is a Gaussian density in energy with integral ``amplitude`` [counts]; a channel
    collects density × |dE/dλ| × channel width, |dE/dλ| = hc/λ² [eV/nm]. ``background``
    [counts per channel] is flat.
    """
    xp = array_module(e_peak_ev, fwhm_ev, amplitude, background)
    lam = np.asarray(wavelength_nm, dtype=float)
    energy = energy_ev(lam)
    dE_per_channel = HC_EV_NM / lam**2 * channel_widths_nm(lam)
    sigma = expand_last(fwhm_ev, xp) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    z = (energy - expand_last(e_peak_ev, xp)) / sigma
    dens = xp.exp(-0.5 * z**2) / (np.sqrt(2.0 * np.pi) * sigma)
    return expand_last(amplitude, xp) * dens * dE_per_channel + expand_last(background, xp)
