"""BYM2 spatial fields for PyMC models, centred or non-centred per field (SPEC §6).

A field ``f`` over the crystal pixels is ``f = μ + V c`` in the eigenbasis of the graph
Laplacian (see :mod:`.graph`), with ``c_k ~ N(0, σ² (ρ v_k + 1 − ρ))`` and ``v_k`` the scaled
ICAR variance of mode k. ρ ∈ (0, 1) is learned per field: ρ → 1 is a smooth ICAR map, ρ → 0
independent pixels, so a field whose pixels differ for real (the SAXS lattice) keeps its
departures while a field the data barely resolve (δψ, g_q) borrows from its neighbours.

* centred: ``c`` is the sampled variable (a rotation of the field itself). Use it where each
  pixel's own data pin the field down far more tightly than its spread.
* non-centred: ``c = sd · z`` with ``z ~ N(0, 1)`` sampled. Use it where the prior carries the
  field.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .graph import PixelGraph


def bym2_sd(graph: PixelGraph, sigma, rho):
    """Per-mode prior standard deviations of a BYM2 field (symbolic in σ and ρ)."""
    v = graph.structured_variance()
    return sigma * pt.sqrt(rho * v + (1.0 - rho))


def bym2_coef_init(graph: PixelGraph, values, mu0: float) -> np.ndarray:
    """Eigen-coefficients that reproduce per-pixel starting ``values`` around the mean ``mu0``."""
    return graph.eigvecs.T @ (np.asarray(values, float) - mu0)


def bym2_field(
    name: str, graph: PixelGraph, mu, sigma, rho, *, centred: bool, dims: str, coef_init=None,
    sd_init=None, unit: float = 1.0,
):  # fmt: skip
    """Add a BYM2 field ``name`` (dims ``dims``, one value per crystal pixel) to the model.

    Parameters
    ----------
    name
        Variable name of the field (a Deterministic on ``dims``).
    graph
        The modality's pixel graph.
    mu, sigma, rho
        Field mean, field scale (same unit as the field) and structured fraction ρ ∈ (0, 1).
    centred
        Sample the eigen-coefficients themselves (True) or standardised ones (False).
    dims
        The pixel dimension name, e.g. ``"xray_pixel"``.
    coef_init, sd_init
        Optional starting eigen-coefficients (see :func:`bym2_coef_init`) and, for the
        non-centred form, the per-mode prior sd they are standardised with.
    unit
        Centred form: the coefficients are sampled in this unit (``{name}_coef_u``), so that
        their posterior sd is near 1 and not under the 1e-3 × 5/(n + 5) variance floor that
        NUTS's mass-matrix adaptation adds (Stan and numpyro alike).
    """
    sd = bym2_sd(graph, sigma, rho)
    mode_dim = f"{dims}_mode"
    model = pm.modelcontext(None)
    if mode_dim not in model.coords:
        model.add_coord(mode_dim, np.arange(graph.eigvecs.shape[1]))
    if centred:
        init = None if coef_init is None else np.asarray(coef_init) / unit
        coef = unit * pm.Normal(f"{name}_coef_u", 0.0, sd / unit, dims=mode_dim, initval=init)
    else:
        z_init = None if coef_init is None or sd_init is None else coef_init / sd_init
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=mode_dim, initval=z_init)
        coef = sd * z
    return pm.Deterministic(name, mu + pt.dot(graph.eigvecs, coef), dims=dims)
