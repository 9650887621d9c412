"""Williamson–Hall peak widths (paper eq. 1, SPEC §5)."""

from __future__ import annotations

import numpy as np

from ._xp import array_module


def wh_widths(q_nm_inv, L_nm, g_q, delta_psi_deg, K=0.86):
    """FWHMs of a WAXS peak at q from NC size and disorder.

    Parameters
    ----------
    q_nm_inv
        Peak position [nm⁻¹].
    L_nm
        Nanocrystal size L [nm].
    g_q
        Relative lattice-constant spread δa/a [fraction, not percent].
    delta_psi_deg
        FWHM of the NC orientation distribution δψ [degree].
    K
        Scherrer shape factor (0.86 for cubes).

    Returns
    -------
    w_q, w_phi_deg
        Radial FWHM ``sqrt((2πK/L)² + (g_q q)²)`` [nm⁻¹] and azimuthal FWHM
        ``sqrt((2πK/(L q))² + δψ²)`` (computed in radians) [degree].
    """
    xp = array_module(q_nm_inv, L_nm, g_q, delta_psi_deg)
    size = 2.0 * np.pi * K / L_nm
    w_q = xp.sqrt(size**2 + (g_q * q_nm_inv) ** 2)
    w_phi_rad = xp.sqrt((size / q_nm_inv) ** 2 + (delta_psi_deg * np.pi / 180.0) ** 2)
    return w_q, w_phi_rad * (180.0 / np.pi)
