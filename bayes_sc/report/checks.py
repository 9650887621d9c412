"""Sampler checks and model checks: rank and trace plots of the worst-mixing entries, the energy
plot, posterior predictive checks, and the regression's forest plot (ArviZ plots where they
exist, ``arviz_plots`` with the matplotlib backend)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from .style import new_figure

SAMPLE_DIMS = ("chain", "draw")
MAX_PPC_UNITS = 4  # pixels (or points) shown per observed variable


def entry_draws(ds: xr.Dataset, label: str) -> xr.DataArray:
    """The (chain, draw) draws of one summary entry, e.g. ``a1[r3c5]`` or ``beta[tau, g_q]``.

    ``ds`` is the labelled posterior of :func:`~.tables.labelled_posterior`: indexed dims
    match their coordinate values, other dims their positions.
    """
    name, _, rest = label.partition("[")
    da = ds[name]
    dims = [d for d in da.dims if d not in SAMPLE_DIMS]
    parts = [p.strip() for p in rest.rstrip("]").split(",")] if rest else []
    if len(parts) != len(dims):
        raise KeyError(label)
    sel = {}
    for d, p in zip(dims, parts, strict=True):
        if d in ds.indexes:
            values = [str(v) for v in ds[d].values]
            sel[d] = values.index(p)
        else:
            sel[d] = int(p)
    return da.isel(sel).reset_coords(drop=True)


def _entries_dataset(ds: xr.Dataset, labels: list[str]) -> xr.Dataset:
    out = {}
    for label in labels:
        try:
            out[label] = entry_draws(ds, label)
        except (KeyError, ValueError, IndexError):
            continue
    return xr.Dataset(out)


def _azp_figure(pc) -> Figure:
    """The matplotlib figure of an ``arviz_plots`` PlotCollection, in constrained layout (its
    default layout lets titles, tick labels and the figure title overlap)."""
    fig = pc.viz["figure"].item()
    fig.set_layout_engine("constrained")
    return fig


def rank_figure(ds: xr.Dataset, labels: list[str]) -> Figure | None:
    """Rank plots (ArviZ ``plot_rank``) of the entries ``labels`` of the labelled posterior."""
    import arviz_plots as azp

    sub = _entries_dataset(ds, labels)
    if not sub.data_vars:
        return None
    pc = azp.plot_rank(
        sub,
        backend="matplotlib",
        col_wrap=min(4, len(sub.data_vars)),
        figure_kwargs={"figsize": (max(2.6 * min(4, len(sub.data_vars)), 6.5), 3.0)},
    )
    fig = _azp_figure(pc)
    fig.suptitle("Rank plots: each chain's rank ECDF minus uniform (near 0 = chains agree)")
    return fig


def trace_figure(ds: xr.Dataset, labels: list[str]) -> Figure | None:
    """Trace plots (ArviZ ``plot_trace``) of the entries ``labels`` of the labelled posterior."""
    import arviz_plots as azp

    sub = _entries_dataset(ds, labels)
    if not sub.data_vars:
        return None
    n = len(sub.data_vars)
    pc = azp.plot_trace(
        sub, backend="matplotlib", col_wrap=1, figure_kwargs={"figsize": (8.0, 1.5 * n + 0.6)}
    )
    fig = _azp_figure(pc)
    fig.suptitle("Traces of the worst-mixing entries, per chain")
    return fig


def energy_figure(tree: xr.DataTree) -> Figure | None:
    """Energy plot (ArviZ ``plot_energy``): marginal vs transition energy, BFMI per chain."""
    import arviz_plots as azp

    if "sample_stats" not in tree.children or "energy" not in tree["sample_stats"]:
        return None
    pc = azp.plot_energy(tree, backend="matplotlib", figure_kwargs={"figsize": (6.0, 3.4)})
    return _azp_figure(pc)  # its figure legend sits where a title would go


def forest_figure(tree: xr.DataTree, ci_prob: float = 0.9) -> Figure | None:
    """Forest plot (ArviZ ``plot_forest``) of the standardised slopes ``beta_std``.

    Standardised slopes (response sd per covariate sd) share one scale; the slopes in natural
    units go in the report's table.
    """
    import arviz_plots as azp

    post = tree["posterior"].to_dataset() if "posterior" in tree.children else None
    name = "beta_std" if post is not None and "beta_std" in post else "beta"
    if post is None or name not in post:
        return None
    ds = post[[name]].reset_coords(drop=True)
    pc = azp.plot_forest(
        ds,
        backend="matplotlib",
        combined=True,
        ci_probs=(0.5, ci_prob),
        figure_kwargs={"figsize": (7.0, 3.6)},
    )
    fig = _azp_figure(pc)
    for ax in fig.axes:
        if ax.get_xlabel() == "" and ax.has_data():
            ax.axvline(0.0, color="0.6", lw=0.8, ls="--", zorder=0)
            if name == "beta_std":
                ax.set_xlabel("standardised slope [response sd / covariate sd]")
    pct = round(100 * ci_prob)
    fig.suptitle(f"{name}: posterior mean, 50 % and {pct} % intervals")
    return fig


# --- posterior predictive checks ----------------------------------------------------------------


def _pick_units(obs: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` units (rows of obs) spanning low to high total observed value."""
    total = np.nansum(obs.reshape(obs.shape[0], -1), axis=1)
    order = np.argsort(total)
    return np.unique(order[np.linspace(0, order.size - 1, min(n, order.size)).round().astype(int)])


def _unit_label(da: xr.DataArray, dim: str, i: int) -> str:
    for prefix in ("xray", "flim"):
        if f"{prefix}_row" in da.coords and da[f"{prefix}_row"].dims == (dim,):
            return f"pixel r{int(da[f'{prefix}_row'][i])}c{int(da[f'{prefix}_col'][i])}"
    return f"{dim} {i}"


def ppc_figure(tree: xr.DataTree, name: str, ci_prob: float = 0.9) -> Figure | None:
    """Observed data of a few units against their posterior predictive.

    For an observed variable of dims (unit, channel) (FLIM decays, PL spectra, X-ray peak
    summaries) a panel per unit shows the observations and the predictive median with its
    central ``ci_prob`` band along the channel; a flat (unit) variable gets ArviZ's
    ``plot_ppc_dist`` instead.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when the variable is not in both ``observed_data`` and ``posterior_predictive``.
    """
    if not {"observed_data", "posterior_predictive"} <= set(tree.children):
        return None
    obs_ds, pp_ds = tree["observed_data"].to_dataset(), tree["posterior_predictive"].to_dataset()
    if name not in obs_ds or name not in pp_ds:
        return None
    obs, pp = obs_ds[name], pp_ds[name]
    if obs.ndim != 2:
        return _ppc_dist(tree, name)
    unit_dim, chan_dim = obs.dims
    o = np.asarray(obs.values, float)
    draws = pp.stack(sample=SAMPLE_DIMS).transpose("sample", unit_dim, chan_dim).values
    units = _pick_units(o, MAX_PPC_UNITS)
    x = obs[chan_dim].values if chan_dim in obs.coords else np.arange(o.shape[1])
    categorical = not np.issubdtype(np.asarray(x).dtype, np.number)
    if categorical:  # named channels (peak parameters): intervals as error bars
        names, x = [str(v) for v in x], np.arange(o.shape[1])
    fig = new_figure(2.7 * len(units) + 0.6, 3.1)
    axes = np.atleast_1d(fig.subplots(1, len(units), squeeze=False).ravel())
    pct = round(100 * ci_prob)
    counts = "count" in name
    for ax, i in zip(axes, units, strict=True):
        lo, med, hi = np.quantile(draws[:, i], [0.5 - ci_prob / 2, 0.5, 0.5 + ci_prob / 2], 0)
        if categorical:  # standardised by the predictive mean and sd: one scale for all
            mu, sd = draws[:, i].mean(0), np.maximum(draws[:, i].std(0), 1e-300)
            lo, med, hi = (lo - mu) / sd, (med - mu) / sd, (hi - mu) / sd
            ax.errorbar(
                x,
                med,
                yerr=[med - lo, hi - med],
                fmt="s",
                ms=4,
                color="C0",
                capsize=3,
                label=f"predictive median, {pct} %",
            )
            ax.plot(x, (o[i] - mu) / sd, "o", color="k", ms=3.5, label="observed")
            ax.axhline(0.0, color="0.7", lw=0.8, zorder=0)
            ax.set_xticks(x, names, rotation=45, ha="right")
        else:
            step = "mid" if counts else None
            ax.fill_between(
                x, lo, hi, color="C0", alpha=0.3, lw=0, step=step, label=f"predictive {pct} %"
            )
            if counts:
                ax.step(x, med, where="mid", color="C0", lw=1.0, label="predictive median")
            else:
                ax.plot(x, med, color="C0", lw=1.0, label="predictive median")
            ax.plot(x, o[i], ".", color="k", ms=2.5, label="observed")
            if counts and np.nanmax(o[i]) > 50 * max(np.nanmedian(o[i]), 1):
                ax.set_yscale("symlog", linthresh=1.0)
            ax.set_xlabel(_channel_label(chan_dim))
        ax.set_title(_unit_label(obs, unit_dim, int(i)))
    axes[0].set_ylabel(
        "counts" if counts else "(value − predictive mean) [predictive sd]" if categorical else name
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), frameon=False)
    fig.suptitle(f"Posterior predictive check: {name}")
    return fig


def _channel_label(dim: str) -> str:
    if dim == "pl_channel":
        return "wavelength [nm]"
    if dim == "flim_time":
        return "time bin (merged) [index]"
    return f"{dim} [index]"


def _ppc_dist(tree: xr.DataTree, name: str, max_obs: int = 5000) -> Figure | None:
    """ArviZ's rootogram (counts) or predictive density of a flat observed variable, on at
    most ``max_obs`` evenly spaced observations."""
    import arviz_plots as azp

    obs = tree["observed_data"].to_dataset()[[name]].reset_coords(drop=True)
    pp = tree["posterior_predictive"].to_dataset()[[name]].reset_coords(drop=True)
    (dim,) = obs[name].dims
    keep = np.unique(np.linspace(0, obs.sizes[dim] - 1, min(max_obs, obs.sizes[dim])).astype(int))
    small = xr.DataTree.from_dict(
        {"observed_data": obs.isel({dim: keep}), "posterior_predictive": pp.isel({dim: keep})}
    )
    kw = {"backend": "matplotlib", "figure_kwargs": {"figsize": (6.0, 3.4)}}
    if np.issubdtype(obs[name].dtype, np.integer):
        pc = azp.plot_ppc_rootogram(small, var_names=[name], **kw)
        kind = "rootogram"
    else:
        pc = azp.plot_ppc_dist(small, var_names=[name], num_samples=50, **kw)
        kind = "distribution"
    fig = _azp_figure(pc)
    from matplotlib.lines import Line2D

    from .style import QUANTITIES

    base = name.removesuffix("_obs")
    xlabel = QUANTITIES[base].label(base) if base in QUANTITIES else None
    for ax in fig.axes:
        if ax.has_data():
            if xlabel and kind == "distribution":
                ax.set_xlabel(xlabel)
            if kind == "distribution":
                ax.legend(
                    [Line2D([], [], color="C0", alpha=0.5), Line2D([], [], color="k")],
                    ["predictive draws", "observed"],
                    loc="upper right",
                    frameon=False,
                )
    fig.suptitle(f"Posterior predictive {kind}, {keep.size} observations")
    return fig


def ppc_variables(tree: xr.DataTree) -> list[str]:
    """Observed variables that have posterior predictive draws."""
    if not {"observed_data", "posterior_predictive"} <= set(tree.children):
        return []
    pp = tree["posterior_predictive"].to_dataset()
    return [v for v in tree["observed_data"].to_dataset().data_vars if v in pp]
