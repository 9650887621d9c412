"""``summary.csv`` and ``diagnostics.json``: ArviZ summary and the sampler's health (SPEC §7).

The summary has one row per variable and index, labelled the ArviZ way (``a1[r3c5]``: pixel
dims are labelled by their grid row and column, PL points by ``p<i>``), with the pixel's
coordinates in extra columns so that a spreadsheet can sort or map them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import xarray as xr

#: Thresholds of the pass/fail verdict (issue 8).
R_HAT_MAX = 1.01
ESS_MIN = 400
DIVERGENCES_MAX = 0
BFMI_MIN = 0.3  # reported, not part of the verdict
SAMPLE_DIMS = ("chain", "draw")
#: Pixel dims and the coordinates copied into the summary's extra columns.
PIXEL_DIMS = {
    "xray_pixel": "xray",
    "flim_pixel": "flim",
    "pl_point": "pl",
}
COORD_COLUMNS = ("row", "col", "x_um", "y_um", "edge_um")


def pixel_labels(ds: xr.Dataset, dim: str) -> np.ndarray:
    """Readable labels of a pixel dim: ``r<row>c<col>`` on grids, ``p<i>`` for PL points."""
    prefix = PIXEL_DIMS[dim]
    if f"{prefix}_row" in ds.coords and f"{prefix}_col" in ds.coords:
        rows, cols = ds[f"{prefix}_row"].values, ds[f"{prefix}_col"].values
        return np.array([f"r{int(r)}c{int(c)}" for r, c in zip(rows, cols, strict=True)])
    return np.array([f"p{i}" for i in range(ds.sizes[dim])])


def labelled_posterior(ds: xr.Dataset) -> tuple[xr.Dataset, dict[str, pd.DataFrame]]:
    """``ds`` with pixel dims indexed by readable labels and every non-index coord dropped.

    Returns the dataset (what ``az.summary`` needs: extra per-pixel coordinates make it fail)
    and, per pixel dim, a frame of its coordinates indexed by label.
    """
    tables = {}
    for dim in SAMPLE_DIMS:  # ArviZ plots need index coordinates on chain and draw
        if dim in ds.dims and dim not in ds.coords:
            ds = ds.assign_coords({dim: np.arange(ds.sizes[dim])})
    for dim, prefix in PIXEL_DIMS.items():
        if dim not in ds.dims:
            continue
        labels = pixel_labels(ds, dim)
        cols = {c: ds[f"{prefix}_{c}"].values for c in COORD_COLUMNS if f"{prefix}_{c}" in ds}
        tables[dim] = pd.DataFrame(cols, index=labels)
        ds = ds.assign_coords({dim: labels})
    keep = set(ds.dims) & set(ds.coords)
    return ds.drop_vars([c for c in ds.coords if c not in keep]), tables


def summary_table(posterior: xr.Dataset, ci_prob: float = 0.9) -> pd.DataFrame:
    """ArviZ summary of every posterior variable, one row per variable and index.

    Parameters
    ----------
    posterior
        The ``posterior`` group as a Dataset (dims ``chain``, ``draw``, ...).
    ci_prob
        Probability of the equal-tailed credible interval [1].

    Returns
    -------
    pandas.DataFrame
        Index: ArviZ labels. Columns: ``variable``, ArviZ's ``mean, sd, eti<p>_lb, eti<p>_ub,
        ess_bulk, ess_tail, r_hat, mcse_mean, mcse_sd`` (unrounded), then the pixel's
        ``row, col, x_um, y_um, edge_um`` where the variable has a pixel dim.
    """
    import arviz as az

    ds, coord_tables = labelled_posterior(posterior)
    names = [
        n
        for n in ds.data_vars
        if set(SAMPLE_DIMS) <= set(ds[n].dims) and np.issubdtype(ds[n].dtype, np.number)
    ]
    if not names:
        return pd.DataFrame(columns=["variable", "mean", "sd"])
    kw = {"ci_prob": ci_prob, "ci_kind": "eti", "round_to": "none", "kind": "all"}
    whole = az.summary(ds[names], **kw)  # one call: per-variable calls cost ~0.3 s each
    frames, start = [], 0
    for name in names:
        da = ds[name]
        extra = [d for d in da.dims if d not in SAMPLE_DIMS]
        n = math.prod(da.sizes[d] for d in extra)
        df = whole.iloc[start : start + n]
        if len(df) != n or not all(i == name or i.startswith(f"{name}[") for i in df.index):
            df = az.summary(ds[[name]], **kw)  # ArviZ ordered the rows differently
        else:
            start += n
        df = df.copy()
        df.insert(0, "variable", name)
        pix = [d for d in extra if d in coord_tables]
        if pix and len(df) == n:
            # ArviZ stacks the non-sample dims in C order: the same order as np.ndindex.
            idx = np.array(list(np.ndindex(*[da.sizes[d] for d in extra])))
            labels = ds[pix[0]].values[idx[:, extra.index(pix[0])]]
            df = df.join(coord_tables[pix[0]].loc[labels].set_index(df.index), how="left")
        frames.append(df)
    out = pd.concat(frames)
    for col in ("row", "col"):  # grid indices stay integers next to rows without a pixel
        if col in out:
            out[col] = out[col].astype("Int64")
    return out


def _finite(series: pd.Series) -> pd.Series:
    return series[np.isfinite(series.astype(float))].astype(float)


def diagnostics(tree: xr.DataTree, summary: pd.DataFrame) -> dict:
    """The sampler's health and the verdict against R-hat ≤ 1.01, ESS ≥ 400, 0 divergences.

    Parameters
    ----------
    tree
        The posterior file's DataTree (``sample_stats`` is used when present).
    summary
        :func:`summary_table` of its posterior.

    Returns
    -------
    dict
        JSON-ready: ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail`` (with the variable
        and index attaining each), ``divergences``, ``bfmi`` (per chain), ``sampling_time_s``
        [s], ``chains``, ``draws``, ``thresholds``, ``checks`` (per check: ``pass`` and the
        failing entries), ``failing_variables`` and ``pass``. Missing sample statistics give
        ``null`` and a check marked ``"recorded": false`` that does not fail the verdict.
    """
    post = tree["posterior"]
    out: dict = {
        "model": tree.attrs.get("model"),
        "chains": int(post.sizes.get("chain", 0)),
        "draws": int(post.sizes.get("draw", 0)),
        "n_parameters": len(summary),
        "thresholds": {
            "r_hat_max": R_HAT_MAX,
            "ess_min": ESS_MIN,
            "divergences_max": DIVERGENCES_MAX,
            "bfmi_min": BFMI_MIN,
        },
    }
    checks = {}
    for col, best, bad in (
        ("r_hat", "max", lambda s: s > R_HAT_MAX),
        ("ess_bulk", "min", lambda s: s < ESS_MIN),
        ("ess_tail", "min", lambda s: s < ESS_MIN),
    ):
        s = _finite(summary[col]) if col in summary else pd.Series(dtype=float)
        key = f"{best}_{col}"
        if s.empty:
            out[key], out[f"{key}_at"] = None, None
            checks[col] = {"pass": True, "recorded": False, "failing": []}
            continue
        at = s.idxmax() if best == "max" else s.idxmin()
        out[key], out[f"{key}_at"] = float(s[at]), str(at)
        failing = s[bad(s)]
        checks[col] = {
            "pass": failing.empty,
            "recorded": True,
            "n_failing": int(failing.size),
            "failing": [str(i) for i in failing.sort_values(ascending=best == "min").index[:50]],
        }
    if "r_hat" in summary:
        out["n_r_hat_undefined"] = int((~np.isfinite(summary["r_hat"].astype(float))).sum())
    stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    if stats is not None and "diverging" in stats:
        div = int(stats["diverging"].sum())
        per_chain = stats["diverging"].sum("draw").values.astype(int).tolist()
        out["divergences"], out["divergences_per_chain"] = div, per_chain
        checks["divergences"] = {"pass": div <= DIVERGENCES_MAX, "recorded": True, "count": div}
    else:
        out["divergences"] = None
        checks["divergences"] = {"pass": True, "recorded": False, "count": None}
    out["bfmi"] = bfmi_per_chain(tree)
    out["bfmi_low_chains"] = [i for i, b in enumerate(out["bfmi"] or []) if b < BFMI_MIN]
    out["sampling_time_s"] = sampling_time(tree)
    out["checks"] = checks
    labels = set()
    for name in ("r_hat", "ess_bulk", "ess_tail"):
        if checks[name].get("n_failing"):
            s = _finite(summary[name])
            bad = s > R_HAT_MAX if name == "r_hat" else s < ESS_MIN
            labels.update(summary.loc[s[bad].index, "variable"])
    out["failing_variables"] = sorted(labels)
    out["pass"] = all(c["pass"] for c in checks.values())
    out["complete"] = all(c["recorded"] for c in checks.values())
    return out


def bfmi_per_chain(tree: xr.DataTree) -> list[float] | None:
    """Bayesian fraction of missing information of each chain, or None without energies."""
    if "sample_stats" not in tree.children or "energy" not in tree["sample_stats"]:
        return None
    import arviz as az

    try:
        res = az.bfmi(tree)
    except (ValueError, KeyError, TypeError):
        return None
    values = res["energy"].values if "energy" in res else np.asarray(res)
    return [float(v) for v in np.atleast_1d(values)]


def sampling_time(tree: xr.DataTree) -> float | None:
    """Sampling time [s] recorded by ``fit``/``regress`` (tree or sample_stats attrs)."""
    for attrs in (
        tree.attrs,
        tree["sample_stats"].attrs if "sample_stats" in tree.children else {},
    ):
        for key in ("sampling_time_s", "sampling_time"):
            if key in attrs:
                try:
                    return float(attrs[key])
                except (TypeError, ValueError):
                    pass
    return None


def _same_entry(a: str, b: str) -> bool:
    """Whether labels ``a`` and ``b`` are one parameter under two names (``g_q_field[r1c2]``
    and ``g_q[r1c2]``, ``pl_gain_z`` and ``pl_gain``): same index, one name a prefix."""
    na, _, ia = a.partition("[")
    nb, _, ib = b.partition("[")
    return ia == ib and (na.startswith(nb) or nb.startswith(na))


def worst_mixing(summary: pd.DataFrame, n: int = 4) -> list[str]:
    """Labels of the ``n`` worst-mixing entries: highest R-hat, then lowest bulk ESS (one
    name per parameter: transforms of an entry already picked are skipped)."""
    if summary.empty or "r_hat" not in summary:
        return []
    rhat = summary["r_hat"].astype(float).fillna(-np.inf)
    ess = summary["ess_bulk"].astype(float).fillna(np.inf)
    picks: list[str] = []
    for order, quota in ((rhat.sort_values(ascending=False), (n + 1) // 2),
                         (ess.sort_values(), n)):  # fmt: skip
        for label in order.index:
            if len(picks) >= quota:
                break
            if not any(_same_entry(label, p) for p in picks):
                picks.append(str(label))
    return picks
