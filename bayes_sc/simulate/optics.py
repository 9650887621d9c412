"""Simulated optical data of a second crystal (on glass): a FLIM image and PL spectra.

The optical responses follow a known linear law (preset ``[simulate.law]``) in the smooth
structural profiles <a>, δψ, g_q evaluated at each pixel's or point's edge distance:
``response = centre value + Σ_c β_c (profile_c(edge) - profile_c(centre)) + noise``.
"""

from __future__ import annotations

import numpy as np

from ..physics import edge_distance_grid, edge_distance_points, flim_expected_counts, gaussian_irf
from ..physics.pl import pl_expected_counts
from .fields import edge_profile, structural_profiles

COVARIATES = ("a_mean", "delta_psi", "g_q")


def law_coefficients(law: dict) -> dict:
    """The law's coefficients as {response: {covariate: β}} (τ in ns, blueshift in meV)."""
    return {
        "tau": {c: float(law[f"tau_per_{c}"]) for c in COVARIATES},
        "blueshift": {c: float(law[f"blueshift_per_{c}"]) for c in COVARIATES},
    }


def law_response(edge_um, xcfg, law, response, rng):
    """Response at edge distances ``edge_um`` [µm]: its departure from the centre value.

    Returns (value, noise-free mean) for τ [ns] or blueshift-like shift [meV].
    """
    beta = law_coefficients(law)[response]
    prof = structural_profiles(edge_um, xcfg)
    centre = structural_profiles(np.inf, xcfg)
    mean = sum(beta[c] * (prof[c] - centre[c]) for c in COVARIATES)
    sigma = law["tau_sigma_ns"] if response == "tau" else law["blueshift_sigma_mev"]
    return mean + sigma * rng.standard_normal(np.shape(edge_um)), mean


def simulate_flim(mask, pixel_um, fcfg, xcfg, law, rng, counts_scale=1.0):
    """Photon histograms (ny, nx, n_bins) of a FLIM image plus its truth.

    Pixels outside ``mask`` (glass) hold only background counts.
    """
    bin_ns = fcfg["bin_ps"] / 1000.0
    n_bins = int(round(fcfg["period_ns"] / bin_ns))
    edge = edge_distance_grid(mask, (pixel_um, pixel_um))
    d_tau, _ = law_response(edge, xcfg, law, "tau", rng)
    tau = np.where(mask, law["tau_centre_ns"] + d_tau, np.nan)
    # PL intensity is highest in the centre (paper); photons follow it.
    amp = np.where(
        mask, counts_scale * fcfg["photons_centre"] * (0.3 + 0.7 * edge_profile(edge)), 0.0
    )
    irf_true = gaussian_irf(n_bins, bin_ns, 2.0, fcfg["irf_fwhm_ps"] / 1000.0)
    irf_true = np.convolve(irf_true, np.exp(-np.arange(60) * bin_ns / 0.05))[:n_bins]  # slow tail
    irf_true /= irf_true.sum()
    bg = fcfg["background_per_bin"] * counts_scale
    lam = np.zeros(mask.shape + (n_bins,))
    inside = np.nonzero(mask)
    lam[inside] = flim_expected_counts(
        irf_true, bin_ns, fcfg["period_ns"], tau[inside], amp[inside], fcfg["irf_shift_ps"], bg
    )
    lam[~mask] = bg
    counts = rng.poisson(lam).astype(np.uint32)
    irf_measured = rng.poisson(irf_true * fcfg["irf_photons"]).astype(float)
    truth = {
        "tau": tau, "amplitude": np.where(mask, amp, np.nan), "background": bg,
        "irf_shift": float(fcfg["irf_shift_ps"]), "mask": mask, "edge_um": edge,
    }  # fmt: skip
    return counts, irf_measured, truth


def pl_points(outline_um, spacing_um, rng):
    """PL measurement points: a jittered grid inside the outline [µm]."""
    lo, hi = outline_um.min(0), outline_um.max(0)
    xs = np.arange(lo[0] + spacing_um / 2, hi[0], spacing_um)
    ys = np.arange(lo[1] + spacing_um / 2, hi[1], spacing_um)
    xx, yy = np.meshgrid(xs, ys)
    x = xx.ravel() + rng.uniform(-0.15, 0.15, xx.size) * spacing_um
    y = yy.ravel() + rng.uniform(-0.15, 0.15, yy.size) * spacing_um
    inside = edge_distance_points(x, y, outline_um) > 0.05
    return x[inside], y[inside]


def simulate_pl(outline_um, pcfg, xcfg, law, rng, counts_scale=1.0):
    """CCD spectra (N, W) [counts, float: shot noise + read noise] at points in the crystal."""
    x, y = pl_points(outline_um, pcfg["point_spacing_um"], rng)
    edge = edge_distance_points(x, y, outline_um)
    shift_mev, _ = law_response(edge, xcfg, law, "blueshift", rng)
    e_peak = law["E_centre_ev"] + shift_mev / 1000.0
    lam_nm = np.linspace(*pcfg["wavelength_nm"], int(pcfg["n_channels"]))
    amp = counts_scale * pcfg["amplitude"] * (0.3 + 0.7 * edge_profile(edge))
    mu = pl_expected_counts(lam_nm, e_peak, pcfg["fwhm_ev"], amp, pcfg["background"])
    counts = rng.poisson(mu) + pcfg["read_noise"] * rng.standard_normal(mu.shape)
    inner = edge >= np.quantile(edge, 0.75)  # SPEC §5: innermost quarter of edge distances
    truth = {
        "E_peak": e_peak, "blueshift": 1000.0 * (e_peak - e_peak[inner].mean()),
        "x_um": x, "y_um": y, "edge_um": edge, "amplitude": amp,
    }  # fmt: skip
    return lam_nm, counts.astype(np.float32), (x, y), truth
