"""The 2D Gaussian Bragg peak in (q, φ) (SPEC §5) and the expected counts of a pixel."""

from __future__ import annotations

import numpy as np

from ._xp import array_module

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def wrap_deg(dphi_deg):
    """Wrap an azimuth difference [degree] into [-180, 180)."""
    return (dphi_deg + 180.0) % 360.0 - 180.0


def gaussian2d_density(q, phi_deg, q0, phi0_deg, w_q, w_phi_deg, I0):
    """Peak density [counts per nm⁻¹ per degree] at (q, φ).

    Parameters
    ----------
    q, phi_deg
        Evaluation points [nm⁻¹], [degree].
    q0, phi0_deg
        Peak centre [nm⁻¹], [degree]; the azimuth difference is wrapped to ±180°.
    w_q, w_phi_deg
        FWHMs [nm⁻¹], [degree].
    I0
        Integrated intensity ∬ density dq dφ [counts].
    """
    xp = array_module(q, phi_deg, q0, phi0_deg, w_q, w_phi_deg, I0)
    s_q = w_q / FWHM_PER_SIGMA
    s_phi = w_phi_deg / FWHM_PER_SIGMA
    dphi = wrap_deg(phi_deg - phi0_deg)
    z = ((q - q0) / s_q) ** 2 + (dphi / s_phi) ** 2
    return I0 / (2.0 * np.pi * s_q * s_phi) * xp.exp(-0.5 * z)


def expected_pixel_counts(density, jacobian, intensity_factor, background=0.0):
    """Expected counts of a pixel: density × |∂(q,φ)/∂(r,c)| × cos³2θ·P + background."""
    return density * jacobian * intensity_factor + background
