"""B-spline bases in edge distance: the smooth profiles that let modalities meet (SPEC §5).

The X-ray fields, FLIM lifetimes and PL blueshifts come from different grids (or crystals);
they meet through edge distance e [µm], each covariate summarised by a profile f(e) = B(e) w.
Shared by the two-stage regression (:mod:`bayes_sc.regress.profiles`) and the joint model
(:mod:`bayes_sc.modeling.law`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline

MIN_SITES_PER_PIECE = 2
EDGES_PER_KNOT = 3  # distinct edge distances per interior knot, at least


@dataclass(frozen=True)
class SplineBasis:
    """A clamped B-spline basis on the edge-distance range [lo, hi] [µm].

    Attributes
    ----------
    knots : full knot vector [µm].
    degree : polynomial degree (3 where the data allow, lower for a handful of distinct edges).
    lo, hi : the range the basis was built on [µm]; outside it the polynomial pieces continue.
    """

    knots: np.ndarray
    degree: int
    lo: float
    hi: float

    @property
    def size(self) -> int:
        return len(self.knots) - self.degree - 1

    def __call__(self, edge_um) -> np.ndarray:
        """Design matrix (n, size) at edge distances ``edge_um`` [µm]."""
        e = np.asarray(edge_um, dtype=float)
        return BSpline.design_matrix(e, self.knots, self.degree, extrapolate=True).toarray()


def spline_basis(edge_um, max_interior_knots: int = 2) -> SplineBasis:
    """A B-spline basis fitting the edge distances ``edge_um`` [µm] of a crystal's pixels.

    Cubic with up to ``max_interior_knots`` interior knots at quantiles of the *pixels'* edge
    distances (as R's ``splines::bs`` places them): a crystal has most of its pixels near its
    edge, where the fields change fastest, so the knots crowd there and the end piece that
    optical pixels beyond the X-ray range read is short. Where those knots would leave a
    coefficient without data (Schoenberg–Whitney: too few distinct edge distances between
    them, as on small scans) they move to quantiles of the distinct edge distances. Fewer
    distinct values still (a handful, a 6 × 6 scan) lower the degree and the number of knots,
    so that the least-squares profile stays determined (size ≤ distinct values); and there is
    at most one interior knot per ``EDGES_PER_KNOT`` (3) distinct edge distances.
    """
    edge = np.round(np.asarray(edge_um, dtype=float).ravel(), 9)
    unique = np.unique(edge)
    if unique.size < 2:
        raise ValueError("a profile needs at least two distinct edge distances")
    degree = int(min(3, unique.size - 1))
    # Each interior knot needs distinct edge distances to pin its extra coefficient: a piece
    # per ring or two bends to the rings' noise, and the hold-out continuation
    # (:func:`continuation_sd`) of such a profile extrapolates its wiggles (a 14 x 14 scan,
    # 11 distinct edges, 8 knots: 50 nm/um)
    n_interior = int(
        np.clip(min(unique.size - degree - 1, unique.size // EDGES_PER_KNOT), 0, max_interior_knots)
    )
    lo, hi = float(unique[0]), float(unique[-1])
    levels = np.linspace(0, 1, n_interior + 2)[1:-1]
    pixel_knots = np.quantile(edge, levels)
    # every polynomial piece held by at least two distinct edge distances, not by continuity
    # alone (a piece over one ring of pixels bends to that ring's noise)
    spans = np.searchsorted(pixel_knots, unique, side="right")
    held = np.bincount(spans, minlength=n_interior + 1).min() >= MIN_SITES_PER_PIECE
    for interior in ([pixel_knots] if held else []) + [np.quantile(unique, levels)]:
        knots = np.concatenate([[lo] * (degree + 1), interior, [hi] * (degree + 1)])
        basis = SplineBasis(knots, degree, lo, hi)
        if np.linalg.matrix_rank(basis(unique)) == basis.size:
            break
    return basis


def continuation_sd(field, edge_um, max_interior_knots=2, rings=2, noise_var=None):
    """sd of the profile's slope change beyond each end of the edge range [unit/µm].

    Hold-out: the least-squares profile of ``field`` without its outermost j = 1..``rings``
    distinct edge distances at one end, extrapolated to that end, misses the full profile by
    Δ_j over D_j µm; the sd is max_j |Δ_j| / D_j. Δ_j is linear in the field, so the part of
    Δ_j² that the field's scatter about its profile explains (``noise_var`` per pixel,
    [unit²]) is subtracted first (a moment estimate floored at 0, as for the profile's
    residual variance): a noisy flat field does not fake a bend. Where no hold-out leaves two
    distinct edge distances (a scan of a handful of rings), the full profile's own end slope:
    its continuation as uncertain as its size.
    """
    field = np.asarray(field, dtype=float)
    edge = np.round(np.asarray(edge_um, dtype=float), 9)
    noise = np.zeros(edge.size) if noise_var is None else np.asarray(noise_var, dtype=float)
    unique = np.unique(edge)
    full = spline_basis(edge, max_interior_knots)
    full_proj = np.linalg.pinv(full(edge))  # (K, n): least-squares coefficients of any field
    out = []
    for end, inner in ((unique[0], unique[1:]), (unique[-1], unique[::-1][1:])):
        rates = []
        for j in range(min(rings, inner.size - 1)):
            keep = (edge >= inner[j]) if end == unique[0] else (edge <= inner[j])
            basis = spline_basis(edge[keep], max_interior_knots)
            a = -(full([end]) @ full_proj)[0]  # Δ_j = a · field
            a[keep] += (basis([end]) @ np.linalg.pinv(basis(edge[keep])))[0]
            miss2 = max(float(a @ field) ** 2 - float(a**2 @ noise), 0.0)
            rates.append(np.sqrt(miss2) / abs(inner[j] - end))
        if not rates:
            h = 1e-3 * (unique[-1] - unique[0])
            slope = (full([end + h]) - full([end - h])) @ full_proj @ field / (2 * h)
            rates.append(abs(float(slope[0])))
        out.append(max(rates))
    return float(out[0]), float(out[1])
