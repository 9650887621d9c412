"""The substrate background of the X-ray windows: a scaled template plus a flat density.

Every (pixel, peak) window's background is ``scale × template + flat × weight`` with
``scale ~ LogNormal(mu, sigma)`` and ``flat ~ HalfNormal(flat_sigma)`` (``[priors.
background_scale]``, ``[priors.flat_background]``). The counts pin the window's *total*
background ``B = scale·T + flat·A`` (T, A: the window's summed template counts and bin weight)
to ~1 %, but barely its split between template and flat, so in (log scale, log flat) the
posterior is a thin curved ridge: log scale falls as the flat grows. A diagonal mass matrix
cannot follow that ridge and NUTS halves its step size. NUTS therefore samples each window in
``(log B, log(flat·A / (scale·T)))`` — the same prior and posterior (the map from (log scale,
log flat) has unit Jacobian), with the ridge straightened into an axis — and
``<region>_background_scale`` and ``<region>_flat_background`` are deterministic. The total
is sampled in counting units, ``log B = log N + z / √N`` (N: the window's observed counts, at
least 1): z is O(1) where log B's posterior sd is ~1/√N, so NUTS starts on a sensible scale
instead of spending its first adaptation windows at depth 10.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from .windows import Windows, padded_layout

PIX = "xray_pixel"
HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)


def _split(value, log_t, log_a, log_n):
    """(log scale, log flat) of the sampled (z, log flat/template ratio) ``value``."""
    u = log_n + value[..., 0] * pt.exp(-0.5 * log_n)
    v = value[..., 1]
    return u - pt.softplus(v) - log_t, u - pt.softplus(-v) - log_a


def _logp(value, log_t, log_a, log_n, mu, sigma, flat_sigma):
    """log density of (z, log ratio): that of (log scale, log flat) — the Jacobians of
    ``scale ~ LogNormal`` and ``flat ~ HalfNormal`` to log space included — times dB/dz."""
    log_s, log_f = _split(value, log_t, log_a, log_n)
    lp_s = -0.5 * ((log_s - mu) / sigma) ** 2 - pt.log(sigma) - HALF_LOG_2PI
    lp_f = 0.5 * np.log(2 / np.pi) - pt.log(flat_sigma) - 0.5 * (pt.exp(log_f) / flat_sigma) ** 2
    return lp_s + lp_f + log_f - 0.5 * log_n


def _random(log_t, log_a, log_n, mu, sigma, flat_sigma, rng=None, size=None):
    """Draws of (z, log ratio) from the scale and flat priors."""
    if size is None:
        size = np.broadcast_shapes(np.shape(log_t), np.shape(log_a), np.shape(log_n))
    log_s = rng.normal(mu, sigma, size=size)
    log_f = np.log(np.abs(rng.normal(0.0, flat_sigma, size=size)))
    a, b = log_s + log_t, log_f + log_a
    return np.stack([(np.logaddexp(a, b) - log_n) * np.exp(0.5 * log_n), b - a], axis=-1)


def _support_point(rv, size, log_t, log_a, log_n, mu, sigma, flat_sigma):
    """Start at the observed total (z = 0) split as the scale prior's median and the flat
    prior's mean would split it."""
    a = mu + log_t
    b = pt.log(flat_sigma * np.sqrt(2 / np.pi)) + log_a
    return pt.stack([pt.zeros_like(a), b - a], axis=-1)


def window_background(
    names: tuple[str, str], dim: str, template, weight, counts, prior_s, prior_f
):  # fmt: skip
    """Per-window template scales and flat densities (two deterministic ``(dim,)`` vectors
    named ``names``), sampled as ``<names[0]>_split`` ``(dim, 2)`` (see module docstring).

    ``template``, ``weight`` and ``counts`` are each window's summed template counts, bin
    weight and observed counts; they only set the sampling coordinates (any positive values
    give the same model).
    """
    weight = np.maximum(np.asarray(weight, float), 1e-12)
    template = np.asarray(template, float)
    template = np.where(template > 0, template, weight)  # no template: any positive constant
    log_t, log_a = np.log(template), np.log(weight)
    log_n = np.log(np.maximum(np.asarray(counts, float), 1.0))
    model = pm.modelcontext(None)
    if "background_param" not in model.coords:
        model.add_coord("background_param", ["total_z", "log_flat_template_ratio"])
    split = pm.CustomDist(
        f"{names[0]}_split", log_t, log_a, log_n, float(prior_s["mu"]), float(prior_s["sigma"]),
        float(prior_f["sigma"]), logp=_logp, random=_random, support_point=_support_point,
        signature="(),(),(),(),(),()->(2)", dims=(dim, "background_param"),
    )  # fmt: skip
    log_s, log_f = _split(split, log_t, log_a, log_n)
    scale = pm.Deterministic(names[0], pt.exp(log_s), dims=dim)
    flat = pm.Deterministic(names[1], pt.exp(log_f), dims=dim)
    return scale, flat


def window_sums(win: Windows, bins: dict, background) -> tuple[np.ndarray, ...]:
    """Each window's (rows of :func:`~.windows.padded_layout`) summed template counts, bin
    weight and observed counts."""
    lay = padded_layout(win)
    b = win.bin
    t = lay.dense(np.asarray(background, float)[b], 0.0).sum(1)
    w = lay.dense(bins["weight"][b], 0.0).sum(1)
    return t, w, lay.dense(win.counts, 0).sum(1)


def xray_background(pr: dict, per: str, wins: dict, suffix: str = "") -> tuple[dict, dict]:
    """The substrate template's scale and the flat density of every window (rows of
    :func:`~.windows.padded_layout`) of each region in ``wins`` (``{region: (windows, bins,
    background)}``): ``({"saxs": (W,), "waxs": (W,)}, same)``.

    ``per = "window"``: each (pixel, peak) window has its own scale
    (``<region>_background_scale<suffix>``, dims ``<region>_window<suffix>``) and flat density
    (``<region>_flat_background<suffix>``), as in the summaries' window fits, sampled as
    :func:`window_background`. ``per = "pixel"`` (the preset's reader allows no other value):
    one scale per pixel shared by its SAXS and WAXS windows (``background_scale``) and one flat
    per pixel and region (``flat_saxs``, ``flat_waxs``). Priors: ``[priors.background_scale]``
    and ``[priors.flat_background]``.
    """
    s_pr, f_pr = pr["background_scale"], pr["flat_background"]
    rows = {r: padded_layout(w[0]).pix for r, w in wins.items()}
    if per == "pixel":
        shared = pm.LogNormal("background_scale", s_pr["mu"], s_pr["sigma"], dims=PIX)
        scale = {r: shared[pix] for r, pix in rows.items()}
        flat = {r: pm.HalfNormal(f"flat_{r}", f_pr["sigma"], dims=PIX)[pix]
                for r, pix in rows.items()}  # fmt: skip
        return scale, flat
    model = pm.modelcontext(None)
    scale, flat = {}, {}
    for r, (win, bins, background) in wins.items():
        dim = f"{r}_window{suffix}"
        model.add_coord(dim, np.arange(rows[r].size))
        names = (f"{r}_background_scale{suffix}", f"{r}_flat_background{suffix}")
        scale[r], flat[r] = window_background(
            names, dim, *window_sums(win, bins, background), s_pr, f_pr
        )
    return scale, flat
