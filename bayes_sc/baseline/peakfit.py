"""Least-squares fit of one 2D Gaussian peak on background-subtracted binned counts.

As in the paper (Methods, "Bragg peak analysis"), each peak is fitted alone in a window by
unweighted least squares after subtracting the substrate pattern; unlike the paper the fit is
done on the Poisson-exact bins (no interpolation), predicting each bin's counts as
``I0 · weight · N(q̄, φ̄; peak, Σ_peak + Σ_bin) + b · weight``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from ..physics.peaks import FWHM_PER_SIGMA, wrap_deg

PEAK_KEYS = ("q0", "phi0", "w_q", "w_phi", "I0")


def binned_gaussian(params, q, phi, weight, var_q, var_phi):
    """Expected counts per bin of a peak plus a flat density ``b``.

    ``params`` = (q0, φ0, ln σq, ln σφ, ln I0, b) [nm⁻¹, degree, -, -, counts, per nm⁻¹ degree].
    """
    q0, phi0, lsq, lsp, li0, b = params
    sq2 = np.exp(2 * lsq) + var_q
    sp2 = np.exp(2 * lsp) + var_phi
    dphi = wrap_deg(phi - phi0)
    dens = np.exp(li0 - 0.5 * ((q - q0) ** 2 / sq2 + dphi**2 / sp2)) / (
        2 * np.pi * np.sqrt(sq2 * sp2)
    )
    return weight * (dens + b)


def binned_gaussian_jacobian(params, q, phi, weight, var_q, var_phi):
    """(bins, 6) derivatives of :func:`binned_gaussian` with respect to ``params``."""
    q0, phi0, lsq, lsp, li0, b = params
    vq, vp = np.exp(2 * lsq), np.exp(2 * lsp)
    sq2, sp2 = vq + var_q, vp + var_phi
    dq, dphi = q - q0, wrap_deg(phi - phi0)
    peak = (
        weight
        * np.exp(li0 - 0.5 * (dq**2 / sq2 + dphi**2 / sp2))
        / (2 * np.pi * np.sqrt(sq2 * sp2))
    )
    return np.column_stack([
        peak * dq / sq2, peak * dphi / sp2,
        peak * vq * (dq**2 / sq2 - 1.0) / sq2,  # d sq2 / d ln σq = 2 σq²
        peak * vp * (dphi**2 / sp2 - 1.0) / sp2,
        peak, weight,
    ])  # fmt: skip


def fit_peak(excess, bins, sel, q_guess, phi_guess, sq_guess, sphi_guess):
    """Fit one peak on the bins ``sel`` of background-subtracted counts ``excess``.

    Returns a dict of q0 [nm⁻¹], φ0 [degree], w_q [nm⁻¹], w_phi [degree], I0 [counts] (NaN when
    the fit fails or lands on its bounds), plus ``ok``.
    """
    q, phi = bins["q_wmean"][sel], bins["phi_wmean"][sel]
    w, vq, vp = bins["weight"][sel], bins["var_q"][sel], bins["var_phi"][sel]
    y = excess[sel]
    nan = dict.fromkeys(PEAK_KEYS, np.nan) | {"ok": False}
    if y.size < 8:
        return nan
    i0 = max(float(y.sum()), 1.0)
    x0 = [q_guess, phi_guess, np.log(sq_guess), np.log(sphi_guess), np.log(i0), 0.0]
    lo = [
        q_guess - 4 * sq_guess,
        phi_guess - 4 * sphi_guess,
        np.log(sq_guess) - 4,
        np.log(sphi_guess) - 4,
        0.0,
        -np.inf,
    ]
    hi = [
        q_guess + 4 * sq_guess,
        phi_guess + 4 * sphi_guess,
        np.log(sq_guess) + 2.5,
        np.log(sphi_guess) + 2.5,
        np.log(i0) + 5,
        np.inf,
    ]
    try:
        res = least_squares(
            lambda p: binned_gaussian(p, q, phi, w, vq, vp) - y, x0, bounds=(lo, hi),
            method="trf", jac=lambda p: binned_gaussian_jacobian(p, q, phi, w, vq, vp),
        )  # fmt: skip
    except (ValueError, np.linalg.LinAlgError):
        return nan
    p = res.x
    at_bound = np.any(
        np.isclose(p[:5], lo[:5], rtol=0, atol=1e-6) | np.isclose(p[:5], hi[:5], rtol=0, atol=1e-6)
    )
    if not res.success or at_bound:
        return nan
    return {
        "q0": p[0], "phi0": p[1] % 360.0, "w_q": FWHM_PER_SIGMA * np.exp(p[2]),
        "w_phi": FWHM_PER_SIGMA * np.exp(p[3]), "I0": np.exp(p[4]), "ok": True,
    }  # fmt: skip
