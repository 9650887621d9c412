"""``report.md``: the verdict, the key numbers in words, and links to every table and figure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from .style import REGRESSION_UNITS, SCALARS, quantity
from .tables import ESS_MIN, R_HAT_MAX

SAMPLE_DIMS = ("chain", "draw")


@dataclass
class Section:
    """A report section: a heading, paragraphs (markdown) and figures (title, relative path)."""

    heading: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)


def fmt(x: float, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, no exponent for everyday magnitudes."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def interval(draws: np.ndarray, ci_prob: float) -> tuple[float, float, float]:
    """Mean and central ``ci_prob`` interval of 1-D draws."""
    lo, hi = np.quantile(draws, [0.5 - ci_prob / 2, 0.5 + ci_prob / 2])
    return float(np.mean(draws)), float(lo), float(hi)


def verdict_text(diag: dict) -> str:
    """The diagnostics verdict in plain words."""
    checks = diag["checks"]
    parts = []
    if diag.get("max_r_hat") is not None:
        ok = "≤" if checks["r_hat"]["pass"] else "> "
        parts.append(
            f"largest R-hat {diag['max_r_hat']:.3f} ({diag['max_r_hat_at']}; "
            f"{ok.strip()} {R_HAT_MAX})"
        )
    for key, name in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        if diag.get(f"min_{key}") is not None:
            ok = "≥" if checks[key]["pass"] else "<"
            parts.append(
                f"smallest {name} ESS {diag[f'min_{key}']:.0f} "
                f"({diag[f'min_{key}_at']}; {ok} {ESS_MIN})"
            )
    if diag.get("divergences") is None:
        parts.append("divergences not recorded (no sample_stats)")
    else:
        parts.append(f"{diag['divergences']} divergent transitions")
    if diag.get("bfmi"):
        low = diag["bfmi_low_chains"]
        parts.append(
            "BFMI per chain "
            + ", ".join(f"{b:.2f}" for b in diag["bfmi"])
            + (f" (chains {low} below 0.3: poor energy exploration)" if low else "")
        )
    if diag.get("sampling_time_s") is not None:
        parts.append(f"sampling took {diag['sampling_time_s']:.0f} s")
    head = "**PASS**" if diag["pass"] else "**FAIL**"
    text = (
        f"{head} — {diag['chains']} chains × {diag['draws']} draws, "
        f"{diag['n_parameters']} parameters: " + "; ".join(parts) + "."
    )
    if not diag["pass"]:
        fails = []
        for key, words in (
            ("r_hat", f"R-hat > {R_HAT_MAX}"),
            ("ess_bulk", f"bulk ESS < {ESS_MIN}"),
            ("ess_tail", f"tail ESS < {ESS_MIN}"),
        ):
            n = checks[key].get("n_failing", 0)
            if n:
                fails.append(f"{n} entries with {words}")
        if not checks["divergences"]["pass"]:
            fails.append(f"{diag['divergences']} divergences")
        text += (
            " Failing: "
            + ", ".join(fails)
            + ". Variables concerned: "
            + ", ".join(f"`{v}`" for v in diag["failing_variables"])
            + ". Do not trust these intervals before sampling longer or reparameterising."
        )
    if not diag.get("complete", True):
        text += " Some checks could not be made (see diagnostics.json, `recorded: false`)."
    return text


def key_numbers(post: xr.Dataset, modalities: dict, ci_prob: float) -> list[str]:
    """Table rows (markdown) of the scalars and the crystal averages of each mapped field."""
    pct = round(100 * ci_prob)
    rows = [
        f"| quantity | posterior mean | {pct} % interval | pixel means (min–max) "
        f"| median pixel {pct} % width |",
        "|---|---|---|---|---|",
    ]
    for name in SCALARS:
        if name in post and set(post[name].dims) <= set(SAMPLE_DIMS):
            m, lo, hi = interval(np.asarray(post[name].values).ravel(), ci_prob)
            q = quantity(name)
            rows.append(
                f"| {q.meaning} `{name}` [{q.unit}] | {fmt(m)} | "
                f"[{fmt(lo)}, {fmt(hi)}] | (scalar) | |"
            )
    for dim, names in modalities.items():
        for name in names:
            da = post[name]
            avg = da.mean(dim).values.ravel()
            m, lo, hi = interval(avg, ci_prob)
            pix = da.mean(SAMPLE_DIMS).values
            q_lo, q_hi = da.quantile([0.5 - ci_prob / 2, 0.5 + ci_prob / 2], SAMPLE_DIMS).values
            width = float(np.median(q_hi - q_lo))
            q = quantity(name)
            rows.append(
                f"| {q.meaning} `{name}` [{q.unit}], crystal average | {fmt(m)} | "
                f"[{fmt(lo)}, {fmt(hi)}] | {fmt(pix.min())}–{fmt(pix.max())} | {fmt(width, 3)} |"
            )
    return rows if len(rows) > 2 else []


def regression_numbers(tree: xr.DataTree, ci_prob: float) -> list[str]:
    """Markdown: β in natural units with intervals, intercepts and sds, collinearity notes."""
    post = tree["posterior"].to_dataset()
    pct = round(100 * ci_prob)
    out = []
    if "beta" in post and {"response", "covariate"} <= set(post["beta"].dims):
        out += [
            f"| response | covariate | β mean | {pct} % interval | unit | β_std mean "
            f"| β_std {pct} % interval |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in post["response"].values:
            for c in post["covariate"].values:
                m, lo, hi = interval(
                    post["beta"].sel(response=r, covariate=c).values.ravel(), ci_prob
                )
                std = ("n/a", "n/a")
                if "beta_std" in post:
                    sm, slo, shi = interval(
                        post["beta_std"].sel(response=r, covariate=c).values.ravel(), ci_prob
                    )
                    std = (fmt(sm, 3), f"[{fmt(slo, 3)}, {fmt(shi, 3)}]")
                unit = f"{REGRESSION_UNITS.get(str(r), '?')}/{REGRESSION_UNITS.get(str(c), '?')}"
                out.append(
                    f"| {r} | {c} | {fmt(m)} | [{fmt(lo)}, {fmt(hi)}] | {unit} | "
                    f"{std[0]} | {std[1]} |"
                )
        excludes = [
            f"{r}~{c}"
            for r in post["response"].values
            for c in post["covariate"].values
            if _excludes_zero(post["beta"].sel(response=r, covariate=c), ci_prob)
        ]
        out.append("")
        out.append(
            f"Slopes whose {pct} % interval excludes zero: "
            + (", ".join(excludes) if excludes else "none")
            + "."
        )
    for name in ("intercept", "sigma"):
        if name in post and "response" in post[name].dims:
            words = []
            for r in post["response"].values:
                m, lo, hi = interval(post[name].sel(response=r).values.ravel(), ci_prob)
                unit = REGRESSION_UNITS.get(str(r), "")
                words.append(f"{r}: {fmt(m)} [{fmt(lo)}, {fmt(hi)}] {unit}")
            out.append(f"\n`{name}` ({pct} % intervals): " + "; ".join(words) + ".")
    return out


def _excludes_zero(da: xr.DataArray, ci_prob: float) -> bool:
    _, lo, hi = interval(da.values.ravel(), ci_prob)
    return lo > 0 or hi < 0


def collinearity_text(tree: xr.DataTree) -> list[str]:
    """The regression's collinearity warnings and condition numbers, as markdown bullets."""
    out = []
    try:
        warnings = json.loads(tree.attrs.get("warnings", "[]"))
    except (TypeError, ValueError):
        warnings = []
    try:
        coll = json.loads(tree.attrs.get("collinearity", "{}"))
    except (TypeError, ValueError):
        coll = {}
    for w in warnings:
        out.append(f"- ⚠ {w}")
    for r, d in coll.items():
        if isinstance(d, dict) and "condition_number" in d:
            out.append(
                f"- {r}: design condition number {fmt(float(d['condition_number']), 3)}"
                f", {d.get('n_units', '?')} pixels"
            )
    if not warnings:
        out.insert(0, "- No collinearity warnings.")
    return out


def render(title: str, intro: list[str], sections: list[Section]) -> str:
    """The whole report.md."""
    lines = [f"# {title}", ""]
    lines += intro + [""]
    for s in sections:
        lines += [f"## {s.heading}", ""]
        for p in s.paragraphs:
            lines += [p, ""]
        for caption, path in s.figures:
            alt = caption.replace("[", "(").replace("]", ")").replace("`", "")
            lines += [f"**{caption}** — [{path}]({path})", "", f"![{alt}]({path})", ""]
    return "\n".join(lines).rstrip() + "\n"
