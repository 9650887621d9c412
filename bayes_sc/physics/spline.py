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
    """A B-spline basis fitting the distinct values of ``edge_um`` [µm].

    Cubic with up to ``max_interior_knots`` interior knots at quantiles of the distinct edge
    distances; fewer distinct values (a small scan) lower the degree and the knots so that the
    least-squares profile stays determined (size ≤ distinct values).
    """
    unique = np.unique(np.round(np.asarray(edge_um, dtype=float), 9))
    if unique.size < 2:
        raise ValueError("a profile needs at least two distinct edge distances")
    degree = int(min(3, unique.size - 1))
    n_interior = int(np.clip(unique.size - degree - 1, 0, max_interior_knots))
    lo, hi = float(unique[0]), float(unique[-1])
    interior = np.quantile(unique, np.linspace(0, 1, n_interior + 2)[1:-1])
    knots = np.concatenate([[lo] * (degree + 1), interior, [hi] * (degree + 1)])
    return SplineBasis(knots, degree, lo, hi)
