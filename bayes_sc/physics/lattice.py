"""Reflection positions of the SAXS superlattice and the WAXS atomic lattice (SPEC §5)."""

from __future__ import annotations

import numpy as np

from ._xp import array_module, expand_last

DEG = np.pi / 180.0


def saxs_reciprocal(a1_nm, a2_nm, gamma_deg, phi_deg):
    """Reciprocal basis (b1x, b1y, b2x, b2y) [nm⁻¹] of the 2D superlattice.

    Real-space a1 lies at azimuth φ - γ/2 and a2 at φ + γ/2 (lengths a1, a2 [nm]);
    b_i · a_j = 2π δ_ij.
    """
    xp = array_module(a1_nm, a2_nm, gamma_deg, phi_deg)
    t1 = (phi_deg - gamma_deg / 2.0) * DEG
    t2 = (phi_deg + gamma_deg / 2.0) * DEG
    a1x, a1y = a1_nm * xp.cos(t1), a1_nm * xp.sin(t1)
    a2x, a2y = a2_nm * xp.cos(t2), a2_nm * xp.sin(t2)
    det = a1x * a2y - a1y * a2x
    k = 2.0 * np.pi / det
    return k * a2y, -k * a2x, -k * a1y, k * a1x


def saxs_reflections(a1_nm, a2_nm, gamma_deg, phi_deg, hk):
    """Centres (q0 [nm⁻¹], φ0 [degree, 0..360)) of reflections ``hk`` (sequence of (h, k)).

    Parameters broadcast; the reflection index is the last axis of the outputs.
    """
    xp = array_module(a1_nm, a2_nm, gamma_deg, phi_deg)
    hk = np.asarray(hk, dtype=float)
    recip = saxs_reciprocal(a1_nm, a2_nm, gamma_deg, phi_deg)
    b1x, b1y, b2x, b2y = (expand_last(v, xp) for v in recip)
    gx = hk[:, 0] * b1x + hk[:, 1] * b2x
    gy = hk[:, 0] * b1y + hk[:, 1] * b2y
    return xp.sqrt(gx**2 + gy**2), xp.arctan2(gy, gx) / DEG % 360.0


def waxs_reflections(a_al_nm, psi_deg, hk):
    """Centres (q0 [nm⁻¹], φ0 [degree]) of pseudocubic reflections ``hk`` for [001] along the beam.

    ``[010]`` lies at azimuth ψ and ``[100]`` at ψ - 90°; reflection (h, k) is at the azimuth of
    ``h e100 + k e010`` with ``q0 = 2π sqrt(h² + k²) / a_AL``.
    """
    xp = array_module(a_al_nm, psi_deg)
    hk = np.asarray(hk, dtype=float)
    # Azimuth of h e100 + k e010 relative to e010 is atan2(-h, k) (e100 is 90° clockwise of e010).
    offset_deg = np.degrees(np.arctan2(-hk[:, 0], hk[:, 1]))
    norm = np.hypot(hk[:, 0], hk[:, 1])
    a, psi = expand_last(a_al_nm, xp), expand_last(psi_deg, xp)
    return 2.0 * np.pi * norm / a, (psi + offset_deg) % 360.0


def lattice_derived(a1_nm, a2_nm):
    """Derived lattice quantities: (a_mean [nm], a_ratio = a2/a1)."""
    return 0.5 * (a1_nm + a2_nm), a2_nm / a1_nm


def canonical_lattice(a1_nm, a2_nm, gamma_deg, phi_deg, phi_ref_deg):
    """Choose, among the equivalent descriptions of one lattice, the one with φ nearest ``phi_ref``.

    Equivalences (SPEC §5): φ counts modulo 180°, and (a1, a2, γ, φ) ~ (a2, a1, 180° - γ, φ + 90°).
    Returns NumPy arrays (a1, a2, γ, φ), φ within ±90° of ``phi_ref_deg``.
    """
    a1, a2, g, p = (np.asarray(v, dtype=float) for v in (a1_nm, a2_nm, gamma_deg, phi_deg))
    alt_p = p + 90.0
    d0 = np.abs((p - phi_ref_deg + 90.0) % 180.0 - 90.0)
    d1 = np.abs((alt_p - phi_ref_deg + 90.0) % 180.0 - 90.0)
    swap = d1 < d0
    a1o, a2o = np.where(swap, a2, a1), np.where(swap, a1, a2)
    go = np.where(swap, 180.0 - g, g)
    po = np.where(swap, alt_p, p)
    po = phi_ref_deg + (po - phi_ref_deg + 90.0) % 180.0 - 90.0
    return a1o, a2o, go, po
