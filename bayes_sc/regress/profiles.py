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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics.spline import SplineBasis, spline_basis  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Profile:
    """One covariate's profile against edge distance: coefficients N(mean, cov) on ``basis``.

    Attributes
    ----------
    name : covariate name (``a_mean``, ``delta_psi``, ``g_q``).
    unit : its unit (nm, degree, percent).
    basis : the B-spline basis.
    mean, cov : (K,), (K, K) Gaussian of the coefficients.
    draw_cov : (K, K) the part of ``cov`` from the X-ray posterior's draws.
    residual_sd : estimated sd of the true field about its profile [covariate unit].
    """

    name: str
    unit: str
    basis: SplineBasis
    mean: np.ndarray
    cov: np.ndarray
    draw_cov: np.ndarray
    residual_sd: float

    def evaluate(self, edge_um) -> np.ndarray:
        """Posterior-mean profile at ``edge_um`` [covariate unit]."""
        return self.basis(edge_um) @ self.mean

    def band(self, edge_um, prob: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, lower, upper) of the profile at ``edge_um`` with a central ``prob`` band."""
        from scipy.stats import norm

        B = self.basis(edge_um)
        mean = B @ self.mean
        sd = np.sqrt(np.einsum("ij,jk,ik->i", B, self.cov, B))
        z = norm.ppf(0.5 + prob / 2)
        return mean, mean - z * sd, mean + z * sd


def estimate_profile(name, unit, draws, edge_um, max_interior_knots: int = 2) -> Profile:
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
    return Profile(
        name, unit, basis, w.mean(axis=0), draw_cov + s2 * gram_inv, draw_cov, float(np.sqrt(s2))
    )
