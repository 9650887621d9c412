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


def binned_peak_counts(weight, q_wmean, phi_wmean, var_q, var_phi, cov_qphi, q0, phi0_deg,
                       s_q, s_phi_deg, I0, wrap=True):  # fmt: skip
    """Expected counts of a Gaussian peak in reduced bins [counts].

    A bin is summarised by its summed weight (solid angle × polarisation × pixels), its
    weight-weighted centroid (q̄, φ̄) and spread (var_q, var_phi, cov_qphi); to second order the
    bin's counts are ``weight × I0 × N((q̄, φ̄); (q0, φ0), Σ_peak + Σ_bin)``.

    Parameters
    ----------
    weight
        Summed weight of the bin's pixels [per-pixel intensity factor × pixels].
    q_wmean, phi_wmean, var_q, var_phi, cov_qphi
        Weighted centroid [nm⁻¹], [degree] and spread [nm⁻²], [degree²], [nm⁻¹·degree].
    q0, phi0_deg, s_q, s_phi_deg
        Peak centre and standard deviations (not FWHMs) [nm⁻¹], [degree].
    I0
        Integrated intensity [counts per unit weight].
    wrap
        Wrap ``phi_wmean - phi0_deg`` into [-180, 180). False where the caller knows the
        difference lies there already (both measured from the same nearby azimuth): one
        floating-point remainder less per bin.
    """
    xp = array_module(weight, q0, phi0_deg, s_q, s_phi_deg, I0)
    a = s_q**2 + var_q
    d = s_phi_deg**2 + var_phi
    det = a * d - cov_qphi**2
    dq = q_wmean - q0
    dp = wrap_deg(phi_wmean - phi0_deg) if wrap else phi_wmean - phi0_deg
    z = (d * dq**2 - 2.0 * cov_qphi * dq * dp + a * dp**2) / det
    return weight * I0 * xp.exp(-0.5 * z) / (2.0 * np.pi * xp.sqrt(det))
