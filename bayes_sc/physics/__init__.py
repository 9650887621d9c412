"""Forward physics: small pure functions shared by the simulator and the models.

Each kernel accepts NumPy arrays, JAX arrays or PyTensor variables (see ``_xp``).
"""

from .edge import edge_distance_grid, edge_distance_points
from .flim import flim_expected_counts, gaussian_irf, irf_circulant, periodic_decay_kernel
from .geometry import DetectorGeometry, azimuth_deg, jacobian_q_phi, q_from_xy, radius_from_q
from .lattice import canonical_lattice, lattice_derived, saxs_reflections, waxs_reflections
from .peaks import (
    FWHM_PER_SIGMA,
    binned_peak_counts,
    expected_pixel_counts,
    gaussian2d_density,
    wrap_deg,
)
from .pl import HC_EV_NM, energy_ev, pl_expected_counts
from .wh import wh_widths

__all__ = [
    "DetectorGeometry",
    "FWHM_PER_SIGMA",
    "HC_EV_NM",
    "azimuth_deg",
    "binned_peak_counts",
    "canonical_lattice",
    "edge_distance_grid",
    "edge_distance_points",
    "energy_ev",
    "expected_pixel_counts",
    "flim_expected_counts",
    "gaussian2d_density",
    "gaussian_irf",
    "irf_circulant",
    "jacobian_q_phi",
    "lattice_derived",
    "periodic_decay_kernel",
    "pl_expected_counts",
    "q_from_xy",
    "radius_from_q",
    "saxs_reflections",
    "waxs_reflections",
    "wh_widths",
    "wrap_deg",
]
