"""The structure → optics law's names and its covariates at the optical pixels.

Shared by the two-stage regression (:mod:`bayes_sc.regress`) and the joint model
(:mod:`.joint`). Covariates are the X-ray fields ⟨a⟩ [nm], δψ [degree] and g_q [percent];
responses the PL blueshift [meV] (on ``pl_point``) and the FLIM lifetime τ [ns] (on
``flim_pixel``). The modalities meet through edge distance (SPEC §5): a covariate field x over
the X-ray pixels is summarised by its least-squares B-spline profile in edge distance,
f(e) = B(e) (BᵀB)⁻¹ Bᵀ x, which is linear in x: at the optical units' edge distances it is
``H @ x`` with a constant matrix H (:func:`covariate_projection`). Beyond the X-ray edge
range the profile's end piece continues with an uncertain change of slope
(:func:`bayes_sc.physics.spline.continuation_sd`), ``R @ η`` with R the units' distances past
each end (:func:`continuation_ramps`).
"""

from __future__ import annotations

import numpy as np

from ..physics.spline import spline_basis

PROFILE_ENDS = ("low", "high")  # the ends of the X-ray edge range a profile continues beyond

COVARIATES = {"a_mean": "nm", "delta_psi": "degree", "g_q": "percent"}
#: response -> (dim, edge coordinate, unit)
RESPONSES = {
    "blueshift": ("pl_point", "pl_edge_um", "meV"),
    "tau": ("flim_pixel", "flim_edge_um", "ns"),
}


def covariate_projection(
    xray_edge_um, unit_edge_um, *, max_interior_knots: int = 2, margin_um: float = 0.3
) -> tuple[np.ndarray, int]:
    """Matrix H mapping an X-ray field to its edge-distance profile at the optical units.

    Parameters
    ----------
    xray_edge_um
        (n_xray,) edge distances of the X-ray crystal pixels [µm].
    unit_edge_um
        (n_units,) edge distances of the optical pixels or points [µm].
    max_interior_knots
        Flexibility of the cubic spline profile (as the two-stage regression's).
    margin_um
        Units up to this far outside the X-ray edge range use the spline's end pieces; farther
        ones are evaluated at that limit (a flat continuation: a spline extrapolated far out
        would invent covariate values no pixel measured).

    Returns
    -------
    H, n_clamped
        (n_units, n_xray) matrix with profile(e_units) = H @ field, and the number of units
        evaluated at the clamped limit.
    """
    xray_edge_um = np.asarray(xray_edge_um, float)
    basis = spline_basis(xray_edge_um, max_interior_knots)
    B = basis(xray_edge_um)
    if B.shape[0] <= B.shape[1]:
        raise ValueError(f"{B.shape[0]} X-ray pixels cannot pin a {B.shape[1]}-coefficient profile")
    lo, hi = basis.lo - margin_um, basis.hi + margin_um
    e = np.asarray(unit_edge_um, float)
    clamped = np.clip(e, lo, hi)
    return basis(clamped) @ np.linalg.pinv(B), int(np.sum(clamped != e))


def continuation_ramps(xray_edge_um, unit_edge_um, *, margin_um: float = 0.3) -> np.ndarray:
    """(n_units, 2) distances of the optical units past the low and high ends of the X-ray
    edge range (0 inside it; at most ``margin_um``, as :func:`covariate_projection` clamps)
    [µm]."""
    xray_edge_um = np.asarray(xray_edge_um, float)
    lo, hi = float(xray_edge_um.min()), float(xray_edge_um.max())
    e = np.clip(np.asarray(unit_edge_um, float), lo - margin_um, hi + margin_um)
    return np.column_stack([np.maximum(lo - e, 0.0), np.maximum(e - hi, 0.0)])
