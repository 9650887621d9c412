"""Profiles against edge distance: per-pixel posteriors, binned credible bands, baselines.

A profile panel shows every pixel's posterior mean with its credible interval (grey), and,
per bin of edge distance, the posterior of the bin's mean value (line and band: for each draw
the mean over the bin's pixels, then the draws' mean and central interval). Where the paper's
least-squares maps are available (``--reduced``), their per-pixel values are overlaid.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .maps import draws_of
from .style import REGRESSION_UNITS, new_figure, quantity

MAX_DISTINCT = 12  # edge distances binned one by one up to this many distinct values
N_BINS = 8


def edge_bins(edge_um: np.ndarray) -> np.ndarray:
    """Bin index of each pixel: one bin per distinct edge distance when there are few,
    else :data:`N_BINS` bins of equal pixel count."""
    edge = np.round(np.asarray(edge_um, float), 6)
    distinct = np.unique(edge)
    if distinct.size <= MAX_DISTINCT:
        return np.searchsorted(distinct, edge)
    cuts = np.unique(np.quantile(edge, np.linspace(0, 1, N_BINS + 1)[1:-1]))
    return np.searchsorted(cuts, edge, side="right")


def binned_band(draws: np.ndarray, edge_um: np.ndarray, ci_prob: float = 0.9) -> dict:
    """Posterior of the mean value per edge-distance bin.

    Parameters
    ----------
    draws
        (samples, n) draws of a per-pixel field.
    edge_um
        (n,) edge distances [µm].
    ci_prob
        Probability of the central band [1].

    Returns
    -------
    dict
        ``edge_um`` (bin centres: mean edge distance of the bin's pixels), ``mean``, ``lower``,
        ``upper`` and ``n`` (pixels per bin), one entry per non-empty bin.
    """
    idx = edge_bins(edge_um)
    out = {k: [] for k in ("edge_um", "mean", "lower", "upper", "n")}
    for b in np.unique(idx):
        sel = idx == b
        m = draws[:, sel].mean(axis=1)
        lo, hi = np.quantile(m, [0.5 - ci_prob / 2, 0.5 + ci_prob / 2])
        for k, v in zip(out, (edge_um[sel].mean(), m.mean(), lo, hi, sel.sum()), strict=True):
            out[k].append(float(v))
    return {k: np.array(v) for k, v in out.items()}


def _grid_axes(fig: Figure, n: int, ncols: int = 3):
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def profile_figure(
    post: xr.Dataset,
    names: list[str],
    dim: str,
    prefix: str,
    ci_prob: float = 0.9,
    baseline: dict | None = None,
    title: str = "",
) -> Figure:
    """One panel per variable: the variable against edge distance with credible bands.

    Parameters
    ----------
    post
        Posterior Dataset with ``<prefix>_edge_um`` on ``dim``.
    names
        Variables on ``dim`` to draw.
    ci_prob
        Probability of the intervals and bands [1].
    baseline
        Optional {variable: (n,) per-pixel least-squares value}, NaN where its fit failed;
        drawn as crosses.
    title
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Panels with x label ``edge distance [µm]`` and y labelled with the unit.
    """
    edge = np.asarray(post[f"{prefix}_edge_um"].values, float)
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig = new_figure(max(3.0 * ncols + 0.6, 6.4), 2.5 * nrows + 0.5)
    pct = round(100 * ci_prob)
    for ax, name in zip(_grid_axes(fig, len(names), ncols), names, strict=True):
        q = quantity(name)
        d = draws_of(post[name], dim)
        lo, hi = np.quantile(d, [0.5 - ci_prob / 2, 0.5 + ci_prob / 2], axis=0)
        mean = d.mean(axis=0)
        ax.errorbar(
            edge,
            mean,
            yerr=[mean - lo, hi - mean],
            fmt="o",
            ms=2.5,
            color="0.55",
            elinewidth=0.6,
            alpha=0.7,
            label=f"pixel mean, {pct} % CI",
        )
        band = binned_band(d, edge, ci_prob)
        ax.fill_between(
            band["edge_um"],
            band["lower"],
            band["upper"],
            color="C0",
            alpha=0.3,
            lw=0,
            label=f"binned mean, {pct} % band",
        )
        ax.plot(band["edge_um"], band["mean"], color="C0", lw=1.5)
        if baseline is not None and name in baseline:
            b = np.asarray(baseline[name], float)
            ok = np.isfinite(b)
            ax.plot(
                edge[ok],
                b[ok],
                "x",
                color="C1",
                ms=4,
                mew=1.0,
                label=f"least squares ({ok.sum()} px)",
            )
        ax.set_xlabel("edge distance [µm]")
        ax.set_ylabel(q.label(name))
        ax.set_title(f"{q.meaning} ({name})")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if ncols == 1:  # one panel: the legend beside it
        fig.legend(handles, labels, loc="outside right upper", frameon=False)
    else:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    if title:
        fig.suptitle(title)
    return fig


# --- regression.nc ------------------------------------------------------------------------------


def regression_profile_figure(tree: xr.DataTree, ci_prob: float = 0.9) -> Figure | None:
    """Covariate profiles (bands per crystal) and responses against edge distance.

    Parameters
    ----------
    tree
        A regression.nc DataTree (groups ``profiles`` and ``constant_data``).
    ci_prob
        Probability of the response error bars [1] (the profiles' bands keep the probability
        ``regress`` stored them with).

    Returns
    -------
    matplotlib.figure.Figure or None
        None when the file holds neither profiles nor responses.
    """
    prof = tree["profiles"].to_dataset() if "profiles" in tree.children else xr.Dataset()
    const = tree["constant_data"].to_dataset() if "constant_data" in tree.children else None
    covs = [c for c in ("a_mean", "delta_psi", "g_q") if f"{c}_mean_0" in prof]
    resps = [r for r in ("blueshift", "tau") if const is not None and f"{r}_mean" in const]
    if not covs and not resps:
        return None
    try:
        crystals = json.loads(prof.attrs.get("crystals", tree.attrs.get("crystals", "[]")))
    except (TypeError, ValueError):
        crystals = []
    n_cry = max((int(k.rsplit("_", 1)[1]) + 1 for k in prof.data_vars if "_mean_" in k), default=0)
    names = covs + resps
    ncols = 3
    fig = new_figure(9.6, 2.6 * (-(-len(names) // ncols)) + 0.6)
    band_pct = round(100 * float(prof.attrs.get("prob", ci_prob)))
    z = _normal_quantile(0.5 + ci_prob / 2)
    for ax, name in zip(_grid_axes(fig, len(names), ncols), names, strict=True):
        q = quantity(name)
        unit = REGRESSION_UNITS.get(name, q.unit)
        if name in covs:
            for k in range(n_cry):
                e = prof[f"edge_{k}"].values
                label = crystals[k] if k < len(crystals) else f"crystal {k}"
                ax.fill_between(
                    e,
                    prof[f"{name}_lower_{k}"],
                    prof[f"{name}_upper_{k}"],
                    color=f"C{k}",
                    alpha=0.3,
                    lw=0,
                )
                ax.plot(
                    e,
                    prof[f"{name}_mean_{k}"],
                    color=f"C{k}",
                    lw=1.5,
                    label=f"{label} ({band_pct} % band)",
                )
            ax.set_title(f"covariate profile: {name}")
        else:
            e, m, s = (const[f"{name}_{k}"].values for k in ("edge_um", "mean", "sd"))
            cry = const[f"{name}_crystal"].values if f"{name}_crystal" in const else 0 * e
            for k in np.unique(cry).astype(int):
                sel = cry == k
                ax.errorbar(
                    e[sel],
                    m[sel],
                    yerr=z * s[sel],
                    fmt="o",
                    ms=2.5,
                    color=f"C{k}",
                    elinewidth=0.6,
                    alpha=0.7,
                )
            # what regress regressed: each pixel's own estimate ± its error (inputs.Response)
            ax.set_title(f"response: {name} (per pixel, ± {round(100 * ci_prob)} %)")
        ax.set_xlabel("edge distance [µm]")
        ax.set_ylabel(f"{q.symbol} [{unit}]")
    if covs:
        fig.axes[0].legend(loc="best")
    fig.suptitle("Regression inputs against edge distance")
    return fig


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))
