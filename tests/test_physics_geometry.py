"""Detector geometry against pyFAI (independent oracle) and against finite differences."""

import numpy as np
import pytest

from bayes_sc.physics import DetectorGeometry, gaussian2d_density
from bayes_sc.physics.geometry import polarisation_factor, solid_angle_factor

pyFAI = pytest.importorskip("pyFAI")
from pyFAI.detectors import Detector  # noqa: E402
from pyFAI.integrator.azimuthal import AzimuthalIntegrator  # noqa: E402

SHAPE = (2167, 2070)  # EIGER X 4M (rows, cols)
# The paper's geometry (SPEC §8): D = 412 mm, λ = 0.0898 nm, 75 µm pixels, ~6 cm off-centre.
PAPER = DetectorGeometry(230.5, 280.2, 412.0, 0.0898, 0.075)


def _pyfai(geom: DetectorGeometry, shape=SHAPE):
    p = geom.pixel_size_mm * 1e-3
    det = Detector(pixel1=p, pixel2=p, max_shape=shape)
    # pyFAI measures the PONI from the detector corner; our pixel (0, 0) is centred at 0.
    return AzimuthalIntegrator(
        dist=geom.distance_mm * 1e-3,
        poni1=(geom.beam_center_y + 0.5) * p,
        poni2=(geom.beam_center_x + 0.5) * p,
        wavelength=geom.wavelength_nm * 1e-9,
        detector=det,
    )


@pytest.fixture(scope="module")
def maps():
    return PAPER.maps(SHAPE), _pyfai(PAPER)


def test_q_and_azimuth_match_pyfai_every_pixel(maps):
    ours, ai = maps
    q_ref = ai.center_array(SHAPE, unit="q_nm^-1")
    chi_ref = np.degrees(ai.center_array(SHAPE, unit="chi_rad"))
    assert np.max(np.abs(ours["q_nm_inv"] / q_ref - 1.0)) < 1e-6
    dphi = (ours["phi_deg"] - chi_ref + 180.0) % 360.0 - 180.0
    # 1e-6 relative to a full turn
    assert np.max(np.abs(dphi)) < 360.0 * 1e-6
    assert ours["phi_deg"].min() >= 0.0 and ours["phi_deg"].max() < 360.0


def test_two_theta_solid_angle_and_polarisation_match_pyfai(maps):
    ours, ai = maps
    tth_ref = ai.center_array(SHAPE, unit="2th_rad")
    np.testing.assert_allclose(ours["two_theta_rad"], tth_ref, rtol=1e-9, atol=1e-12)
    # pyFAI's polarisation with factor 1 = beam fully polarised along the detector's x axis.
    pol_ref = ai.polarization(SHAPE, factor=1.0)
    pol = polarisation_factor(ours["two_theta_rad"], ours["phi_deg"])
    np.testing.assert_allclose(pol, pol_ref, rtol=1e-5)
    # pyFAI's solid angle is normalised at the PONI and integrates over each pixel's area;
    # cos³2θ is its value at the pixel centre, equal to 1e-6 on 75 µm pixels at 412 mm.
    sa_ref = ai.solidAngleArray(SHAPE)
    np.testing.assert_allclose(solid_angle_factor(ours["two_theta_rad"]), sa_ref, rtol=1e-5)


def test_jacobian_matches_finite_differences():
    g = PAPER
    rows = np.array([300.0, 900.0, 1500.0, 2000.0])
    cols = np.array([400.0, 1000.0, 50.0, 1800.0])
    h = 1e-3
    q_r1, p_r1 = g.q_phi(rows + h, cols)
    q_r0, p_r0 = g.q_phi(rows - h, cols)
    q_c1, p_c1 = g.q_phi(rows, cols + h)
    q_c0, p_c0 = g.q_phi(rows, cols - h)
    dq_dr, dq_dc = (q_r1 - q_r0) / (2 * h), (q_c1 - q_c0) / (2 * h)
    dp_dr, dp_dc = (p_r1 - p_r0) / (2 * h), (p_c1 - p_c0) / (2 * h)
    det = np.abs(dq_dr * dp_dc - dq_dc * dp_dr)
    x, y = g.pixel_xy_mm(rows, cols)
    from bayes_sc.physics import jacobian_q_phi

    jac = jacobian_q_phi(x, y, g.distance_mm, g.wavelength_nm, g.pixel_size_mm)
    np.testing.assert_allclose(jac, det, rtol=1e-6)


def test_peak_counts_summed_over_pixels_give_integrated_intensity():
    """Σ_pixels density × Jacobian ≈ I0: the Jacobian turns a (q, φ) density into pixel counts."""
    g = DetectorGeometry(300.3, 299.6, 412.0, 0.0898, 0.075)
    m = g.maps((1000, 1000))
    I0 = 5000.0
    dens = gaussian2d_density(m["q_nm_inv"], m["phi_deg"], 5.0, 45.0, 0.2, 4.0, I0)
    total = (dens * m["jacobian"]).sum()
    assert abs(total / I0 - 1.0) < 2e-3
