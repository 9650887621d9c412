"""``bayes-sc report``: diagnostics, credible-interval tables, maps and profiles (SPEC §7).

:func:`write_report` turns any file ``fit`` or ``regress`` writes (an X-ray, FLIM, PL or joint
``posterior.nc``, or ``regression.nc``) into a folder with ``summary.csv``,
``diagnostics.json``, PNG figures under ``figures/`` and ``report.md`` linking them. The folder
is built under a temporary sibling name and renamed into place, so no half-written report is
ever left under the requested name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError, require_file
from .files import MODELS, check_outdir, default_outdir, read_posterior, staged_folder

log = logging.getLogger(__name__)
__all__ = ["MODELS", "default_outdir", "read_posterior", "write_report"]
N_WORST = 4  # entries in the rank and trace plots
_MODALITY_NAMES = {"xray": "X-ray", "flim": "FLIM", "pl": "PL"}


# --- the report ---------------------------------------------------------------------------------


def write_report(posterior, outdir=None, *, ci_prob=0.9, reduced=None) -> Path:
    """Write the report of ``posterior`` and return the path of its ``report.md``.

    Parameters
    ----------
    posterior
        A ``posterior.nc`` (model ``xray``, ``flim``, ``pl`` or ``joint``) or a
        ``regression.nc``.
    outdir
        Report folder (default ``<posterior's folder>/<posterior stem>_report``). An existing
        folder is replaced only if it holds a previous report (``report.md``).
    ci_prob
        Probability of every credible interval and band [1] (default 0.9).
    reduced
        Optional ``reduced.h5`` the posterior was fitted to: the paper's least-squares
        per-pixel values are overlaid on the profiles.

    Returns
    -------
    pathlib.Path
        ``<outdir>/report.md``.

    Raises
    ------
    InputError
        Bad input (see :func:`read_posterior`), a bad ``ci_prob``, an unusable ``outdir`` or
        a missing ``reduced``; nothing is written then.
    """
    import matplotlib

    posterior = Path(posterior)
    if not 0 < float(ci_prob) < 1:
        raise InputError(None, f"ci_prob must lie in (0, 1), got {ci_prob}")
    tree, model = read_posterior(posterior)
    if reduced is not None:
        reduced = require_file(reduced)
    outdir = check_outdir(
        Path(outdir) if outdir is not None else default_outdir(posterior), [posterior, reduced]
    )
    from .style import FONT

    _files_backend()
    with staged_folder(outdir) as tmp, matplotlib.rc_context(FONT):
        _build(tree, model, posterior, tmp, float(ci_prob), reduced)
    log.info("wrote %s", outdir / "report.md")
    return outdir / "report.md"


def _files_backend() -> None:
    """Draw with Agg when called off the main thread (a Dask worker): ArviZ's plots go
    through pyplot, whose GUI backends fail outside the main thread."""
    import threading

    import matplotlib

    if threading.current_thread() is not threading.main_thread():
        if matplotlib.get_backend().lower() not in (
            "agg",
            "module://matplotlib_inline.backend_inline",
        ):
            import matplotlib.pyplot as plt

            plt.switch_backend("Agg")


def _save(fig, folder: Path, name: str, pyplot: bool = False) -> str:
    from .style import DPI

    (folder / "figures").mkdir(exist_ok=True)
    rel = f"figures/{name}.png"
    fig.savefig(folder / rel, dpi=DPI)
    if pyplot:  # arviz_plots figures live in pyplot's registry
        import matplotlib.pyplot as plt

        plt.close(fig)
    return rel


def _build(tree, model, source: Path, out: Path, ci_prob: float, reduced) -> None:
    from . import checks, maps, markdown, profiles, tables
    from .style import MODALITIES, quantity

    post = tree["posterior"].to_dataset()
    pct = round(100 * ci_prob)
    log.info("summary table (%d variables)", len(post.data_vars))
    summary = tables.summary_table(post, ci_prob)
    summary.to_csv(out / "summary.csv", index_label="label")
    diag = tables.diagnostics(tree, summary)
    diag.update(source=str(source), ci_prob=ci_prob, bayes_sc_version=__version__)
    (out / "diagnostics.json").write_text(json.dumps(diag, indent=2) + "\n")
    sections = [
        markdown.Section(
            "Diagnostics",
            [
                markdown.verdict_text(diag),
                "Tables: [summary.csv](summary.csv) (ArviZ summary, one row per variable "
                f"and index, {pct} % equal-tailed intervals) and "
                "[diagnostics.json](diagnostics.json).",
            ],
        )
    ]
    notes: list[str] = []
    mapped = {}
    for dim, names in MODALITIES.values():
        if dim in post.dims:
            mapped[dim] = maps.map_variables(post, names, dim)
    key = markdown.key_numbers(post, mapped, ci_prob)
    if key:
        sections.append(
            markdown.Section(f"Key numbers ({pct} % credible intervals)", ["\n".join(key)])
        )
    if "beta" in post and {"response", "covariate"} <= set(post["beta"].dims):  # also joint
        log.info("regression: slopes, forest plot, profiles")
        sec = markdown.Section(
            "Regression: slopes β", ["\n".join(markdown.regression_numbers(tree, ci_prob))]
        )
        fig = checks.forest_figure(tree, ci_prob)
        if fig is not None:
            sec.figures.append(
                ("Standardised slopes (forest plot)", _save(fig, out, "forest_beta", pyplot=True))
            )
        if "warnings" in tree.attrs or "collinearity" in tree.attrs:
            text = "\n".join(markdown.collinearity_text(tree))
            sec.paragraphs.append("Collinearity:\n\n" + text)
        sections.append(sec)
        fig = profiles.regression_profile_figure(tree, ci_prob)
        if fig is not None:
            sections.append(
                markdown.Section(
                    "Regression inputs against edge distance",
                    figures=[("Covariate profiles and responses", _save(fig, out, "profiles"))],
                )
            )
    baseline, base_notes = ({}, [])
    if reduced is not None and mapped:
        log.info("least-squares baseline from %s", reduced)
        from .baseline import least_squares

        baseline, base_notes = least_squares(reduced, tree, post)
        notes += base_notes
    map_sec = markdown.Section(
        "Maps",
        [
            f"Posterior mean (left) and {pct} % interval width "
            "(right) per pixel; pixels outside the crystal blank."
        ],
    )
    prof_sec = markdown.Section(
        "Profiles against edge distance",
        [
            f"Grey: each pixel's posterior mean and {pct} % interval. Blue: per bin of edge "
            f"distance, the posterior mean and {pct} % band of the bin's average."
            + (
                " Orange crosses: the paper's per-pixel least-squares values."
                if baseline
                else " (Least-squares baseline points: pass the reduced.h5 with --reduced.)"
                if reduced is None
                else " (The paper's least-squares pipeline has no per-pixel values for these "
                "fields.)"
            )
        ],
    )
    for dim, names in mapped.items():
        prefix = dim.split("_")[0]
        if not names:
            continue
        log.info("maps: %s (%d variables)", prefix, len(names))
        for name in names:
            if prefix in ("xray", "flim") and maps.has_grid(post, prefix):
                fig = maps.grid_map_figure(post, name, dim, prefix, ci_prob)
            elif f"{prefix}_x_um" in post.coords:
                fig = maps.point_map_figure(
                    post, name, dim, prefix, ci_prob, outline_um=_outline(tree, prefix, reduced)
                )
            else:
                notes.append(f"{name}: no pixel coordinates, no map")
                continue
            caption = f"Map of {quantity(name).meaning} `{name}` [{quantity(name).unit}]"
            map_sec.figures.append((caption, _save(fig, out, f"map_{name}")))
        if f"{prefix}_edge_um" in post.coords:
            log.info("profiles: %s", prefix)
            fig = profiles.profile_figure(
                post,
                names,
                dim,
                prefix,
                ci_prob,
                baseline=baseline.get(prefix),
                title=f"{_MODALITY_NAMES[prefix]} fields against edge distance",
            )
            caption = f"{_MODALITY_NAMES[prefix]} fields against edge distance"
            prof_sec.figures.append((caption, _save(fig, out, f"profiles_{prefix}")))
        else:
            notes.append(f"{prefix}: no edge distances ({prefix}_edge_um), no profiles")
    if map_sec.figures:
        sections.append(map_sec)
    if prof_sec.figures:
        sections.append(prof_sec)
    log.info("sampler checks: rank, trace, energy")
    sections.append(_sampler_checks(tree, post, summary, out, notes))
    log.info("posterior predictive checks")
    sections.append(_ppc_section(tree, out, ci_prob, notes))
    if notes:
        sections.append(markdown.Section("Notes", ["\n".join(f"- {n}" for n in notes)]))
    title = f"{tree.attrs.get('crystal', source.stem)}: {model} posterior"
    if model == "regression":
        try:
            names = ", ".join(json.loads(tree.attrs.get("crystals", "[]")))
        except (TypeError, ValueError):
            names = ""
        title = f"Regression of {names}" if names else f"Regression ({source.name})"
    intro = [
        f"Source: `{source}` (model `{model}`"
        + "".join(
            f", {k} `{tree.attrs[k]}`"
            for k in ("sampler", "material", "likelihood", "seed")
            if k in tree.attrs
        )
        + f"). Report by bayes_sc {__version__}."
    ]
    (out / "report.md").write_text(markdown.render(title, intro, sections))


def _outline(tree, prefix: str, reduced=None) -> np.ndarray | None:
    """The crystal's outline polygon [µm]: from constant_data, else from reduced.h5's /pl."""
    if "constant_data" in tree.children:
        const = tree["constant_data"].to_dataset()
        for name in (f"{prefix}_outline_um", "outline_um"):
            if name in const and const[name].ndim == 2 and const[name].shape[1] == 2:
                return np.asarray(const[name].values, float)
    if reduced is not None and prefix == "pl":
        import h5py

        try:
            with h5py.File(reduced, "r") as f:
                if "pl/outline_um" in f:
                    out = np.asarray(f["pl/outline_um"][()], float)
                    return out if out.ndim == 2 and out.shape[1] == 2 else None
        except OSError:
            return None
    return None


def _sampler_checks(tree, post, summary, out: Path, notes: list[str]):
    from . import checks, markdown, tables

    sec = markdown.Section("Sampler checks")
    worst = tables.worst_mixing(summary, N_WORST)
    labelled, _ = tables.labelled_posterior(post)
    if worst:
        sec.paragraphs.append(
            "Worst-mixing entries (highest R-hat, lowest bulk ESS): "
            + ", ".join(f"`{w}`" for w in worst)
            + "."
        )
        for kind, fn in (("rank", checks.rank_figure), ("trace", checks.trace_figure)):
            fig = _auxiliary(notes, f"{kind} plot", fn, labelled, worst)
            if fig is not None:
                sec.figures.append(
                    (f"{kind.capitalize()} plots", _save(fig, out, kind, pyplot=True))
                )
    if "sample_stats" not in tree.children or "energy" not in tree["sample_stats"]:
        notes.append("no energy in sample_stats: no energy plot")
    elif (fig := _auxiliary(notes, "energy plot", checks.energy_figure, tree)) is not None:
        sec.figures.append(("Energy plot", _save(fig, out, "energy", pyplot=True)))
    return sec


def _auxiliary(notes: list[str], what: str, fn, *args):
    """``fn(*args)``, or None with a note when an auxiliary ArviZ plot cannot be drawn for
    this file (the tables, maps and profiles never pass through here)."""
    try:
        return fn(*args)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        notes.append(f"{what} not drawn: {type(err).__name__}: {' '.join(str(err).split())}")
        log.warning("%s", notes[-1])
        return None


def _ppc_section(tree, out: Path, ci_prob: float, notes: list[str]):
    from . import checks, markdown

    sec = markdown.Section("Posterior predictive checks")
    names = checks.ppc_variables(tree)
    if not names:
        sec.paragraphs.append(
            "Skipped: the file has no `posterior_predictive` group (fit with "
            "`--posterior-predictive` to get one)."
        )
        return sec
    for name in names:
        fig = _auxiliary(
            notes, f"predictive check of {name}", checks.ppc_figure, tree, name, ci_prob
        )
        if fig is not None:
            pyplot = fig.canvas.manager is not None
            sec.figures.append((f"{name}", _save(fig, out, f"ppc_{name}", pyplot=pyplot)))
    return sec
