"""The X-ray model: every crystal pixel's SAXS and WAXS peaks in one hierarchical posterior.

Per crystal pixel: the superlattice (a_mean, a_ratio, γ, φ → a1, a2) places the SAXS peaks
and their Friedel mates (SPEC §5); ψ places the WAXS peaks, whose widths follow
Williamson–Hall with global L_nc and per-pixel δψ, g_q; I_AL scales them. Every per-pixel
field has a BYM2 spatial prior over the crystal's 4-neighbour graph, centred or non-centred
as the preset says (``[priors.<field>].field``). The likelihood is Poisson on the raw binned
counts inside each pixel's peak windows (:mod:`.windows`): expected counts = substrate
template × scale + a flat density × bin weight + the window's peak I0 · weight ·
N(q̄, φ̄; peak, Σ_peak + Σ_bin). Nothing is subtracted from the counts. The background's scale
and flat belong to each (pixel, peak) window (the preset's ``[xray] background_per =
"window"``: the model whose windows the fast likelihood, :mod:`.summaries`, summarises one by
one) or are shared by a pixel's windows (``"pixel"``).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ..physics import binned_peak_counts, saxs_reflections, waxs_reflections, wh_widths
from ..physics.peaks import FWHM_PER_SIGMA, wrap_deg
from .background import PIX, xray_background
from .spatial import field, scaled_normal
from .summaries import PARAMS, PeakSummaries, starting_values
from .windows import Windows, merge_window_bins, padded_layout
from .xray_data import XrayData

FIELDS = (
    "a_mean",
    "a_ratio",
    "gamma",
    "phi",
    "psi",
    "delta_psi",
    "g_q",
    "I_AL",
    "saxs_w_q",
    "saxs_w_phi",
)


def _field(name, prior, graph, start, half_range=None):
    """A BYM2 field of the X-ray model (see :func:`.spatial.field`)."""
    return field(name, prior, graph, start, dims=PIX, half_range=half_range)


def _or(values, default):
    """``values`` with NaN (failed first estimates) replaced by ``default`` when all fail."""
    values = np.asarray(values, float)
    return values if np.isfinite(values).any() else np.full(values.shape, default)


def _expected_counts(win: Windows, bins, bg, scale, flat, q0, phi0, sq, sphi, i0):
    """Expected and observed counts of every window element, window by window: substrate
    template × ``scale`` + ``flat`` × bin weight + its own peak
    (:func:`~bayes_sc.physics.binned_peak_counts`); ``scale, flat`` are (window,) tensors in
    the rows of :func:`~.windows.padded_layout` (see :func:`~.background.xray_background`),
    ``q0, phi0, sq, sphi, i0`` (pixel, peak) tensors, ``sq, sphi`` standard deviations.
    Elements come in (row, slot) order.

    Computed block by block on the dense (window, slot) layout of
    :func:`~.windows.padded_layout`, so each window's peak parameters broadcast over its bins
    (padding: zero weight, unit variances) and one boolean mask per block drops the padding at
    the end. A mask, not integer indices: PyTensor lifts an integer gather through the
    arithmetic, back to per-element gathers. Azimuths are measured from each window's centre
    (bins lie within its half-width, peaks near it), so no bin's difference needs wrapping.
    """
    lay = padded_layout(win)
    b = win.bin
    centre = win.centre_phi[win.pix, win.peak]
    cells = {
        "weight": (bins["weight"][b], 0.0), "q": (bins["q_wmean"][b], 0.0),
        "phi": (wrap_deg(bins["phi_wmean"][b] - centre), 0.0), "vq": (bins["var_q"][b], 1.0),
        "vp": (bins["var_phi"][b], 1.0), "c": (bins["cov_qphi"][b], 0.0), "bg": (bg[b], 0.0),
        "y": (win.counts, 0),
    }  # fmt: skip
    cells = {k: lay.block_dense(v, fill) for k, (v, fill) in cells.items()}
    masks = lay.block_dense(True, False)
    pix, peak = lay.pix, lay.peak
    peak0 = [q0[pix, peak], wrap_deg(phi0[pix, peak] - win.centre_phi[pix, peak])]
    peak0 += [t[pix, peak] for t in (sq, sphi, i0)]
    mus, ys = [], []
    for k, (r0, r1, _) in enumerate(lay.blocks):
        c = {name: v[k] for name, v in cells.items()}
        counts = binned_peak_counts(
            c["weight"], c["q"], c["phi"], c["vq"], c["vp"], c["c"],
            *(t[r0:r1, None] for t in peak0), wrap=False,
        )  # fmt: skip
        mu = scale[r0:r1, None] * c["bg"] + flat[r0:r1, None] * c["weight"] + counts
        mus.append(mu[masks[k]])
        ys.append(c["y"][masks[k]])
    return pt.concatenate(mus), np.concatenate(ys)


def _summary_likelihood(name, summ: PeakSummaries, theta, dim):
    """Observe each window's Laplace summary: whitened, θ̂ ~ N(θ(fields), LLᵀ) becomes
    L⁻¹θ̂ ~ N(L⁻¹θ(fields), I) — the same likelihood, as a plain Normal for predictive checks.
    ``theta`` is a list of five (pixel, peak) tensors in :data:`~.summaries.PARAMS` order."""
    m, k = summ.pix, summ.peak
    obs = summ.theta
    cols = [t[m, k] for t in theta]
    cols[1] = obs[:, 1] + wrap_deg(cols[1] - obs[:, 1])  # azimuths compared across ±180°
    mu = pt.stack(cols, axis=1)
    linv = np.linalg.inv(summ.chol)
    pm.Normal(name, mu=(linv * mu[:, None, :]).sum(-1), sigma=1.0,
              observed=np.einsum("wij,wj->wi", linv, obs), dims=(dim, "peak_param"))  # fmt: skip


def build_xray_model(
    data: XrayData, preset: dict, saxs: Windows, waxs: Windows, first: dict,
    summaries: tuple[PeakSummaries, PeakSummaries] | None = None,
) -> pm.Model:  # fmt: skip
    """The PyMC model of one scan's X-ray data (see module docstring).

    Parameters
    ----------
    data
        Reduced X-ray data and the crystal's pixel graph.
    preset
        Material preset (priors, constants, reflections).
    saxs, waxs
        The likelihood's (pixel, bin) windows.
    first
        First estimates (the baseline's maps and a_AL, L_nc): the centres of circular field
        means and starting values, never priors on the fields themselves.
    summaries
        SAXS and WAXS :class:`~.summaries.PeakSummaries` (usable windows only): the fast
        likelihood, replacing the exact Poisson one (and its background terms).
    """
    g, pr, bins = data.graph, preset["priors"], data.bins
    K = float(preset["constants"]["K_scherrer"]["value"])
    take = {
        k: first[k][g.rows, g.cols] for k in ("a_mean", "a_ratio", "gamma", "phi", "psi", "I_AL")
    }
    n_saxs = len(preset["xray"]["saxs_reflections"])
    n_waxs = len(preset["xray"]["waxs_reflections"])
    # Where NUTS starts: the summaries' own estimates of the peak fields, when there are some.
    start = starting_values(*summaries, g.n, n_saxs, n_waxs) if summaries is not None else {}
    if "I_AL" in start:
        take["I_AL"] = np.where(np.isfinite(start["I_AL"]), start["I_AL"], take["I_AL"])
    coords = {PIX: np.arange(g.n), "saxs_reflection": np.arange(n_saxs),
              "waxs_reflection": np.arange(n_waxs)}  # fmt: skip
    if summaries is not None:
        coords.update(saxs_window=np.arange(summaries[0].pix.size), peak_param=list(PARAMS),
                      waxs_window=np.arange(summaries[1].pix.size))  # fmt: skip
    bg = data.background if data.background is not None else np.zeros(bins["weight"].size)
    with pm.Model(coords=coords) as model:
        a_mean = _field("a_mean", pr["a_mean"], g, take["a_mean"])
        a_ratio = _field("a_ratio", pr["a_ratio"], g, take["a_ratio"])
        gamma = _field("gamma", pr["gamma"], g, take["gamma"])
        phi = _field("phi", pr["phi"], g, take["phi"], half_range=90.0)
        psi = _field("psi", pr["psi"], g, take["psi"], half_range=45.0)
        delta_psi = _field(
            "delta_psi", pr["delta_psi"], g, _or(first["delta_psi"][g.rows, g.cols], 15.0)
        )
        g_q = _field(
            "g_q", pr["g_q"], g, np.clip(_or(first["g_q"][g.rows, g.cols], 1.5), 0.3, None)
        )
        I_AL = _field("I_AL", pr["I_AL"], g, _or(take["I_AL"], 3000.0))
        w_q = _field("saxs_w_q", pr["saxs_w_q"], g, start.get("saxs_w_q", 0.08))
        w_phi = _field("saxs_w_phi", pr["saxs_w_phi"], g, start.get("saxs_w_phi", 6.0))
        a1 = 2 * a_mean / (1 + a_ratio)
        a2 = a1 * a_ratio
        outputs = {
            "a1": a1, "a2": a2, "a_mean": a_mean, "a_ratio": a_ratio, "gamma": gamma,
            "phi": phi, "psi": psi, "delta_psi": delta_psi, "g_q": g_q, "I_AL": I_AL,
        }  # fmt: skip
        for name, v in outputs.items():  # the SPEC §7 names, on the natural scale
            pm.Deterministic(name, v, dims=PIX)
        a_AL = scaled_normal("a_AL", pr["a_AL"]["mu"], pr["a_AL"]["sigma"],
                             pr["a_AL"].get("sample_unit", 1.0), first["a_AL"])  # fmt: skip
        log_L = scaled_normal(
            "log_L_nc", pr["L_nc"]["mu"], pr["L_nc"]["sigma"], pr["L_nc"].get("sample_unit", 1.0),
            np.log(first.get("L_nc", 7.0)),
        )  # fmt: skip
        L_nc = pm.Deterministic("L_nc", pt.exp(log_L))
        waxs_rel = pm.Dirichlet(
            "waxs_rel",
            np.full(n_waxs, 5.0),
            dims="waxs_reflection",
            initval=start.get("waxs_rel"),
        )
        log_i_saxs = scaled_normal(
            "log_I_saxs", pr["I_saxs"]["mu"], pr["I_saxs"]["sigma"],
            pr["I_saxs"].get("sample_unit", 1.0), np.nan_to_num(
                start.get("log_I_saxs", np.nan) * np.ones((g.n, n_saxs)),
                nan=float(pr["I_saxs"]["mu"])),
            dims=(PIX, "saxs_reflection"),
        )  # fmt: skip
        # SAXS: reflections and their Friedel mates share position (±G), width and intensity.
        hk = np.asarray(preset["xray"]["saxs_reflections"], float)
        q0, p0 = saxs_reflections(a1, a2, gamma, phi, np.concatenate([hk, -hk]))
        log_i0 = pt.concatenate([log_i_saxs, log_i_saxs], axis=1)
        ones = pt.ones_like(q0)
        sq = (w_q / FWHM_PER_SIGMA)[:, None] * ones
        sp = (w_phi / FWHM_PER_SIGMA)[:, None] * ones
        # WAXS: positions from a_AL and ψ; widths from Williamson–Hall; I0 = I_AL × relative.
        hk = np.asarray(preset["xray"]["waxs_reflections"], float)
        qw, pw = waxs_reflections(a_AL, psi, np.concatenate([hk, -hk]))
        qw = qw * pt.ones_like(pw)  # a_AL is global: broadcast to (pixel, reflection)
        wq, wphi = wh_widths(qw, L_nc, g_q[:, None] / 100.0, delta_psi[:, None], K)
        rel = pt.concatenate([waxs_rel, waxs_rel]) * coords["waxs_reflection"].size
        i_w = I_AL[:, None] * rel[None, :]
        if summaries is not None:
            _summary_likelihood(
                "saxs_summary",
                summaries[0],
                [q0, p0, pt.log(sq), pt.log(sp), log_i0],
                "saxs_window",
            )
            _summary_likelihood(
                "waxs_summary",
                summaries[1],
                [qw, pw, pt.log(wq / FWHM_PER_SIGMA), pt.log(wphi / FWHM_PER_SIGMA), pt.log(i_w)],
                "waxs_window",
            )  # fmt: skip
            # Windows without a usable summary (weak or cut by the detector: the Laplace
            # approximation fails there) keep their exact Poisson likelihood, on merged bins.
            wins = {
                r: exact_part(w, s, bins, bg, preset["xray"]["unsummarised_merge"][r])
                for r, w, s in zip(("saxs", "waxs"), (saxs, waxs), summaries, strict=True)
            }
            per, suffix = "window", "_exact"
        else:
            wins = {"saxs": (saxs, bins, bg, None), "waxs": (waxs, bins, bg, None)}
            per, suffix = preset["xray"].get("background_per", "window"), ""
        wins = {r: v for r, v in wins.items() if v is not None}
        scale, flat = xray_background(pr, per, {r: v[:3] for r, v in wins.items()}, suffix)
        for region, peak_args in (
            ("saxs", (q0, p0, sq, sp, pt.exp(log_i0))),
            ("waxs", (qw, pw, wq / FWHM_PER_SIGMA, wphi / FWHM_PER_SIGMA, i_w)),
        ):
            if region in wins:
                win, b, back, _ = wins[region]
                mu, y = _expected_counts(win, b, back, scale[region], flat[region], *peak_args)
                pm.Poisson(f"{region}_counts{suffix}", mu, observed=y)
    return model


def exact_part(win: Windows, summ: PeakSummaries, bins: dict, background, factor):
    """The exact-Poisson part of the summary model for one region: the windows of ``win``
    without a summary in ``summ``, their bins merged ``factor = (n_q, n_phi)`` at a time
    (:func:`~.windows.merge_window_bins`). Returns ``(windows, bins, background, element's
    merged bin)`` (the last None when nothing is merged), or None when every window has a
    summary."""
    rest = unsummarised(win, summ)
    if rest is None:
        return None
    if tuple(int(f) for f in factor) == (1, 1):
        return rest, bins, background, None
    merged, mbins, inv = merge_window_bins(rest, bins, background, factor)
    return merged, mbins, mbins["background"], inv


def _without_summary(win: Windows, summ: PeakSummaries) -> np.ndarray:
    """(elements,) True where the element's (pixel, peak) window has no summary in ``summ``."""
    n_peak = win.centre_q.shape[1]
    return ~np.isin(win.pix * n_peak + win.peak, summ.pix * n_peak + summ.peak)


def unsummarised(win: Windows, summ: PeakSummaries) -> Windows | None:
    """The elements of ``win`` whose (pixel, peak) window has no summary in ``summ``
    (None when every window has one)."""
    keep = _without_summary(win, summ)
    if not keep.any():
        return None
    return Windows(win.pix[keep], win.bin[keep], win.peak[keep], win.counts[keep],
                   win.centre_q, win.centre_phi, win.half)  # fmt: skip


def with_exact_counts(win: Windows, summ: PeakSummaries, values, bins, factor) -> Windows:
    """``win`` with the counts of its windows without a summary replaced so that the summary
    model (built with the same ``bins`` and merge ``factor``) observes ``values`` as
    ``<region>_counts_exact`` (e.g. its prior predictive draws, for simulation-based
    calibration). A merged bin's draw goes to its first bin, zeros to the others: the model
    sees only their sum."""
    merged, _, _, inv = exact_part(win, summ, bins, np.zeros(bins["weight"].size), factor)
    lay = padded_layout(merged)  # observed in (row, slot) order (see _expected_counts)
    per_bin = np.asarray(values)[np.lexsort((lay.slot, lay.row)).argsort()]
    keep = np.flatnonzero(_without_summary(win, summ))
    if inv is None:
        new = per_bin
    else:
        first = np.zeros(per_bin.size, np.int64)
        first[inv[::-1]] = np.arange(inv.size)[::-1]
        new = np.zeros(inv.size, np.int64)
        new[first] = per_bin
    counts = win.counts.copy()
    counts[keep] = new
    return Windows(win.pix, win.bin, win.peak, counts, win.centre_q, win.centre_phi, win.half)
