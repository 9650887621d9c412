"""Covariate profiles against edge distance, estimated from an X-ray posterior (SPEC §5).

The optical responses and the X-ray fields come from different crystals, so they meet through
edge distance: each covariate (⟨a⟩, δψ, g_q) is summarised by a smooth profile f(e) = B(e) w,
a B-spline in edge distance e [µm] with coefficients w. Its uncertainty has two parts, both
carried into the regression:

- the X-ray posterior's: every posterior draw of the field gets its own least-squares profile
  (w_d = P x_d), and the spread of the w_d over draws is the fields' measurement uncertainty;
- the profile's own sampling error: pixels scatter about the profile (real pixel-to-pixel
  structure), so a finite crystal pins the profile only to s² (BᵀB)⁻¹, s² the residual
  variance of the fields about their profile, estimated from the posterior-mean field's
  residuals less the part its own errors (the posterior variance) contribute.

The profile coefficients are then Gaussian, N(m, C): ``C = Cov_d(w_d) + s² (BᵀB)⁻¹``.

Beyond the X-ray pixels' edge-distance range [lo, hi] (optical pixels nearer the edge than the
X-ray scan's first ring: SPEC §5's edge distances start at one step of each grid) the spline's
end piece continues, and its error there is not noise but shape: the true profile may bend
where no X-ray pixel saw it. That is a third part, a random change of slope at each end,
f(e) = B(e) w + η_lo (lo − e)₊ + η_hi (e − hi)₊ with η ~ N(0, σ²), σ from a hold-out: the
profile refitted without the outermost one (two) distinct edge distances and extrapolated back
to the end misses the full profile there by |Δ_j| over the distance D_j it extrapolated, and
σ = max_j |Δ_j| / D_j [unit/µm], less the part of Δ_j the fields' posterior errors explain
(:func:`continuation_sd`). The coefficients of :meth:`Profile.design` are (w, η_lo, η_hi),
Gaussian with mean (m, 0, 0) and block-diagonal covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics.spline import SplineBasis, continuation_sd, spline_basis  # noqa: F401


@dataclass(frozen=True)
class Profile:
    """One covariate's profile against edge distance: coefficients N(mean, cov) on ``basis``.

    Attributes
    ----------
    name : covariate name (``a_mean``, ``delta_psi``, ``g_q``).
    unit : its unit (nm, degree, percent).
    basis : the B-spline basis.
    mean, cov : (K + 2,), (K + 2, K + 2) Gaussian of the coefficients of :meth:`design`:
        the spline's K, then the slope changes beyond the low and high ends (mean 0).
    draw_cov : (K + 2, K + 2) the part of ``cov`` from the X-ray posterior's draws.
    residual_sd : estimated sd of the true field about its profile [covariate unit].
    continuation_sd : (low end, high end) sd of the slope change beyond each end of the X-ray
        edge range [covariate unit / µm].
    """

    name: str
    unit: str
    basis: SplineBasis
    mean: np.ndarray
    cov: np.ndarray
    draw_cov: np.ndarray
    residual_sd: float
    continuation_sd: tuple[float, float] = (0.0, 0.0)

    def design(self, edge_um) -> np.ndarray:
        """(n, K + 2) design at ``edge_um`` [µm]: the spline basis, then the distances beyond
        the low and high ends of the X-ray edge range (0 inside it) [µm]."""
        e = np.asarray(edge_um, dtype=float)
        b = self.basis
        return np.column_stack([b(e), np.maximum(b.lo - e, 0.0), np.maximum(e - b.hi, 0.0)])

    def evaluate(self, edge_um) -> np.ndarray:
        """Posterior-mean profile at ``edge_um`` [covariate unit]."""
        return self.design(edge_um) @ self.mean

    def band(self, edge_um, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) of the profile at ``edge_um`` with a central ``prob`` band."""
        from scipy.stats import norm

        B = self.design(edge_um)
        mean = B @ self.mean
        sd = np.sqrt(np.einsum("ij,jk,ik->i", B, self.cov, B))
        z = norm.ppf(0.5 + prob / 2)
        return mean, mean - z * sd, mean + z * sd


def estimate_profile(
    name, unit, draws, edge_um, max_interior_knots: int = 2, continuation_rings: int = 2
) -> Profile:
    """Profile of one covariate from its posterior draws.

    Parameters
    ----------
    name, unit
        Covariate name and unit.
    draws
        (n_draws, n_pixels) posterior draws of the field [unit].
    edge_um
        (n_pixels,) edge distance of every pixel [µm].
    max_interior_knots
        Interior knots of the cubic spline (flexibility of the profile).
    continuation_rings
        Hold-outs of the continuation's sd beyond the edge range (:func:`continuation_sd`).
    """
    draws = np.asarray(draws, dtype=float)
    basis = spline_basis(edge_um, max_interior_knots)
    B = basis(edge_um)
    n, k = B.shape
    if n <= k:
        raise ValueError(f"{n} pixels cannot pin a {k}-coefficient profile")
    gram_inv = np.linalg.inv(B.T @ B)
    proj = gram_inv @ B.T  # (K, n): least-squares coefficients of any field
    w = draws @ proj.T  # (n_draws, K)
    field_mean = draws.mean(axis=0)
    resid = field_mean - B @ (proj @ field_mean)
    # The posterior means scatter about the profile by the fields' real pixel-to-pixel
    # departures δ plus their own errors e (variance ≈ the posterior variance v): the residual
    # sum of squares is ≈ (n − K) σ_δ² + Σ v_i (1 − h_ii). The draws already carry e (draw_cov),
    # so only σ_δ² belongs in the sampling-error term (moment estimate, floored at 0).
    leverage = np.einsum("ij,ji->i", B, proj)
    v = draws.var(axis=0)
    s2 = max(float(resid @ resid - v @ (1.0 - leverage)) / (n - k), 0.0)
    draw_cov = np.atleast_2d(np.cov(w, rowvar=False))
    # Only the posterior errors v are discounted from the hold-outs' misses, not s²: s² also
    # holds the spline's misfit where the field bends more than it can (the very shape error
    # the continuation stands for)
    sd = continuation_sd(field_mean, edge_um, max_interior_knots, continuation_rings, v)
    pad = np.zeros((k + 2, k + 2))
    pad[:k, :k] = draw_cov
    cov = pad.copy()
    cov[:k, :k] += s2 * gram_inv
    cov[k, k], cov[k + 1, k + 1] = sd[0] ** 2, sd[1] ** 2
    mean = np.concatenate([w.mean(axis=0), [0.0, 0.0]])
    return Profile(name, unit, basis, mean, cov, pad, float(np.sqrt(s2)), sd)
