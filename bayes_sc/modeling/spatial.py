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


def bym2_sd(graph: PixelGraph, sigma, rho, order: int = 1):
    """Per-mode prior standard deviations of a BYM2 field (symbolic in σ and ρ); ``order`` 2
    makes the structured part the smoother Q² field (:meth:`.PixelGraph.structured_variance`)."""
    v = graph.structured_variance(order)
    return sigma * pt.sqrt(rho * v + (1.0 - rho))


def bym2_coef_init(graph: PixelGraph, values, mu0: float) -> np.ndarray:
    """Eigen-coefficients that reproduce per-pixel starting ``values`` around the mean ``mu0``."""
    return graph.eigvecs.T @ (np.asarray(values, float) - mu0)


def bym2_field(
    name: str, graph: PixelGraph, mu, sigma, rho, *, centred: bool, dims: str, coef_init=None,
    sd_init=None, unit: float = 1.0, order: int = 1,
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
    order
        Order of the structured part: 1 ICAR, 2 the smoother Q² field.
    """
    sd = bym2_sd(graph, sigma, rho, order)
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


def scaled_normal(name, mu, sigma, unit, initval, dims=None):
    """``name ~ Normal(mu, sigma)``, sampled as ``{name}_u`` in units of ``unit``.

    A parameter the data pin to far below 1e-3 (a lattice constant's log to 1e-5) would sit
    under the variance floor of NUTS's mass-matrix adaptation and force tiny steps on every
    other parameter; in a unit near its posterior sd it adapts like the rest. The density of
    ``name`` is unchanged (a linear change of variables).
    """
    u = pm.Normal(f"{name}_u", mu / unit, sigma / unit, initval=np.asarray(initval) / unit,
                  dims=dims)  # fmt: skip
    return pm.Deterministic(name, unit * u, dims=dims)


class ScaledLog(pm.distributions.transforms.Transform):
    """Positive ``x`` sampled as ``z = (log x - centre) / scale`` (a linear change of variables
    of ``log x``: the prior is unchanged, only the coordinates NUTS adapts in)."""

    name = "scaled_log"

    def __init__(self, centre: float, scale: float):
        self.centre, self.scale = float(centre), float(scale)

    def forward(self, value, *inputs):
        return (pt.log(value) - self.centre) / self.scale

    def backward(self, value, *inputs):
        return pt.exp(self.centre + self.scale * value)

    def log_jac_det(self, value, *inputs):
        return np.log(self.scale) + self.centre + self.scale * value


def field(name, prior, graph, start, *, dims: str, half_range=None, centred=None,
          hyper_scale=None):  # fmt: skip
    """A BYM2 field on the field's transformed scale; returns it on the natural scale.

    ``start`` holds per-pixel starting values (NaN where unknown): they set the initial point
    (the mean, the field scale and the field itself), never the prior. ``centred`` overrides
    the preset's ``field.centred`` (e.g. decided from the data); ``field.rho`` is the Beta prior
    on the structured fraction ρ (filled from ``[spatial] field_rho`` on loading) and
    ``field.order`` (default 1) the order of the structured part (2: the smoother Q² field, for
    a field whose truth is a smooth map the data resolve only coarsely). The preset's
    ``field.sample_unit`` [transformed units] is the unit the mean and centred coefficients are
    sampled in (see :func:`scaled_normal`). ``hyper_scale`` (e.g. 1/√n for n pixels whose own
    data pin the field) samples the field's mean in units of ``hyper_scale`` × that unit and its
    log scale in units of ``hyper_scale``: both are pinned ~√n more tightly than any one pixel,
    and in unit coordinates NUTS's warm-up begins without the deep trees of an identity mass
    matrix far off the posterior's scales.
    """
    spec = prior["field"]
    log = spec["transform"] == "log"
    unit = float(spec.get("sample_unit", 1.0))
    start = np.asarray(start, float) * np.ones(graph.n)
    start = np.where(np.isfinite(start), start, np.nanmedian(start))
    t = np.log(start) if log else start
    centre = float(np.mean(t))
    mean_unit = unit if hyper_scale is None else unit * float(hyper_scale)
    if half_range is not None:  # circular fields: the mean anywhere in one period around the data
        # untransformed: the bounds lie ~1e4 posterior sds away, and a logit transform would
        # undo the unit
        u = pm.Uniform(f"{name}_mu_u", -half_range / unit, half_range / unit, initval=0.0,
                       default_transform=None)  # fmt: skip
        mu = pm.Deterministic(f"{name}_mu", centre + unit * u)
    elif prior["dist"] == "HalfNormal":  # a positive field: weakly informative log-mean
        mu = scaled_normal(f"{name}_mu", np.log(prior["sigma"] / 2), 1.5, mean_unit, centre)
    else:
        mu = scaled_normal(f"{name}_mu", prior["mu"], prior["sigma"], mean_unit, centre)
    sd0 = float(np.clip(np.std(t), 0.05 * spec["sd_scale"], 2 * spec["sd_scale"]))
    # (default_transform=None would mean no transform at all: pass it only when replacing log)
    sd_kw = {}
    if hyper_scale is not None:
        sd_kw["default_transform"] = ScaledLog(np.log(sd0), hyper_scale)
    sigma = pm.HalfNormal(f"{name}_sd", spec["sd_scale"], initval=sd0, **sd_kw)
    a, b = float(spec["rho"]["alpha"]), float(spec["rho"]["beta"])  # preset [spatial] field_rho
    rho0 = a / (a + b)
    rho = pm.Beta(f"{name}_rho", a, b, initval=rho0)
    order = int(spec.get("order", 1))
    coef0 = bym2_coef_init(graph, t, centre)
    sd_modes = sd0 * np.sqrt(rho0 * graph.structured_variance(order) + 1.0 - rho0)
    centred = spec["centred"] if centred is None else centred
    f = bym2_field(f"{name}_field", graph, mu, sigma, rho, centred=centred, dims=dims,
                   coef_init=coef0, sd_init=sd_modes, unit=unit, order=order)  # fmt: skip
    return pt.exp(f) if log else f
