"""Detector geometry (SPEC §5): pixel -> (q, azimuth), Jacobian, solid angle, polarisation.

Conventions: pixel (row r, column c) has its centre at ``X = (c - beam_center_x) * p`` and
``Y = (r - beam_center_y) * p`` on a flat detector normal to the beam at distance ``D``;
``2θ = atan(sqrt(X² + Y²) / D)``, ``q = (4π/λ) sin θ`` [nm⁻¹] and the azimuth
``φ = atan2(Y, X)`` [degree] in [0, 360).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ._xp import array_module


@dataclass(frozen=True)
class DetectorGeometry:
    """Flat-detector geometry.

    Attributes
    ----------
    beam_center_x, beam_center_y
        Direct-beam position [pixel] (column, row); pixel (0, 0) is centred at (0, 0).
    distance_mm
        Sample-detector distance [mm].
    wavelength_nm
        X-ray wavelength [nm].
    pixel_size_mm
        Square pixel edge [mm].
    """

    beam_center_x: float
    beam_center_y: float
    distance_mm: float
    wavelength_nm: float
    pixel_size_mm: float

    def as_dict(self) -> dict:
        return asdict(self)

    def pixel_xy_mm(self, rows, cols):
        """Pixel-centre coordinates X, Y [mm] of (rows, cols) (broadcast)."""
        x = (np.asarray(cols, dtype=float) - self.beam_center_x) * self.pixel_size_mm
        y = (np.asarray(rows, dtype=float) - self.beam_center_y) * self.pixel_size_mm
        return x, y

    def q_phi(self, rows, cols):
        """q [nm⁻¹] and azimuth φ [degree, 0..360) at pixel centres (rows, cols)."""
        x, y = self.pixel_xy_mm(rows, cols)
        return q_from_xy(x, y, self.distance_mm, self.wavelength_nm), azimuth_deg(x, y)

    def maps(self, shape):
        """Per-pixel arrays for a detector of ``shape = (rows, cols)``.

        Returns a dict with ``q_nm_inv``, ``phi_deg``, ``two_theta_rad``, ``jacobian``
        (|∂(q, φ°)/∂(row, col)| [nm⁻¹ degree per pixel²]) and ``intensity_factor``
        (cos³2θ · polarisation, the factors SPEC §5 applies to the peak density).
        """
        rows, cols = np.indices(shape, dtype=float)
        x, y = self.pixel_xy_mm(rows, cols)
        tth = two_theta(x, y, self.distance_mm)
        phi = azimuth_deg(x, y)
        return {
            "q_nm_inv": q_from_two_theta(tth, self.wavelength_nm),
            "phi_deg": phi,
            "two_theta_rad": tth,
            "jacobian": jacobian_q_phi(
                x, y, self.distance_mm, self.wavelength_nm, self.pixel_size_mm
            ),
            "intensity_factor": solid_angle_factor(tth) * polarisation_factor(tth, phi),
        }


def two_theta(x_mm, y_mm, distance_mm):
    """Scattering angle 2θ [rad] of a point (X, Y) [mm] on a detector at ``distance_mm``."""
    xp = array_module(x_mm, y_mm, distance_mm)
    return xp.arctan(xp.sqrt(x_mm**2 + y_mm**2) / distance_mm)


def q_from_two_theta(two_theta_rad, wavelength_nm):
    """Momentum transfer q = (4π/λ) sin θ [nm⁻¹]."""
    xp = array_module(two_theta_rad, wavelength_nm)
    return 4.0 * np.pi / wavelength_nm * xp.sin(two_theta_rad / 2.0)


def two_theta_from_q(q_nm_inv, wavelength_nm):
    """Inverse of :func:`q_from_two_theta`: 2θ [rad] of q [nm⁻¹]."""
    xp = array_module(q_nm_inv, wavelength_nm)
    return 2.0 * xp.arcsin(q_nm_inv * wavelength_nm / (4.0 * np.pi))


def q_from_xy(x_mm, y_mm, distance_mm, wavelength_nm):
    """q [nm⁻¹] of a detector point (X, Y) [mm]."""
    return q_from_two_theta(two_theta(x_mm, y_mm, distance_mm), wavelength_nm)


def azimuth_deg(x_mm, y_mm):
    """Azimuth φ = atan2(Y, X) [degree], counter-clockwise, in [0, 360)."""
    xp = array_module(x_mm, y_mm)
    return xp.arctan2(y_mm, x_mm) * (180.0 / np.pi) % 360.0


def radius_from_q(q_nm_inv, distance_mm, wavelength_nm):
    """Distance from the beam centre [mm] at which q [nm⁻¹] lands on the detector."""
    xp = array_module(q_nm_inv)
    return distance_mm * xp.tan(two_theta_from_q(q_nm_inv, wavelength_nm))


def jacobian_q_phi(x_mm, y_mm, distance_mm, wavelength_nm, pixel_size_mm):
    """|∂(q, φ)/∂(row, col)| [nm⁻¹ · degree per pixel²] at detector point (X, Y) [mm].

    With R = sqrt(X² + Y²): (R, φ) are polar coordinates of (X, Y), so
    |∂(R, φ_rad)/∂(X, Y)| = 1/R, and dq/dR = (2π/λ) cos θ · D / (D² + R²). Singular at the
    beam centre itself (R = 0), which lies behind the beamstop.
    """
    xp = array_module(x_mm, y_mm)
    r2 = x_mm**2 + y_mm**2
    r = xp.sqrt(r2)
    theta = xp.arctan(r / distance_mm) / 2.0
    dq_dr = 2.0 * np.pi / wavelength_nm * xp.cos(theta) * distance_mm / (distance_mm**2 + r2)
    return dq_dr / r * (180.0 / np.pi) * pixel_size_mm**2


def solid_angle_factor(two_theta_rad):
    """Relative solid angle of a flat-detector pixel, cos³(2θ) (1 at the beam centre)."""
    xp = array_module(two_theta_rad)
    return xp.cos(two_theta_rad) ** 3


def polarisation_factor(two_theta_rad, phi_deg):
    """P = 1 - sin²(2θ) cos²(φ), for a beam polarised along detector X."""
    xp = array_module(two_theta_rad, phi_deg)
    return 1.0 - xp.sin(two_theta_rad) ** 2 * xp.cos(phi_deg * (np.pi / 180.0)) ** 2
