"""The demo's fitting half: fit every model to a reduced crystal, then regress (SPEC §2).

``bayes-sc demo`` simulates a small crystal and reduces it (:mod:`bayes_sc.cli`), then calls
:func:`fit_and_regress`: the X-ray, FLIM and PL posteriors and the regression, with short
chains so that the whole pipeline runs in minutes on two cores. Real analyses use the
defaults of ``bayes-sc fit`` and ``bayes-sc regress``.
"""

from __future__ import annotations

import time
from pathlib import Path

#: Sampler settings of the demo: (tune, draws) per model; short but with clean diagnostics.
DEMO_SETTINGS = {
    "xray": (1000, 2000),
    "flim": (1000, 2000),
    "pl": (500, 1500),
    "regress": (1000, 4000),  # g_q's slope on 6 x 6 scans: heavy-tailed, ESS 333 at 2000
}


def diagnostics_line(path) -> str:
    """Max R-hat, min bulk ESS and divergences of a written posterior, as text."""
    import arviz as az
    import xarray as xr

    tree = xr.open_datatree(path)
    post = tree["posterior"].to_dataset().reset_coords(drop=True)
    # per variable: one array of all would broadcast their different dims against each other
    rhat = max(float(v.max()) for v in az.rhat(post).data_vars.values())
    ess = min(float(v.min()) for v in az.ess(post, method="bulk").data_vars.values())
    div = int(tree["sample_stats"]["diverging"].sum())
    return f"max R-hat {rhat:.3f}, min bulk ESS {ess:.0f}, {div} divergences"


def fit_and_regress(outdir, reduced, *, seed: int = 0, progress: bool = True) -> dict:
    """Fit ``xray``, ``flim`` and ``pl`` to ``reduced`` and regress; return the outputs.

    Writes ``posterior_{xray,flim,pl}.nc`` and ``regression.nc`` under ``outdir`` and prints
    the regression's β with 90 % credible intervals.
    """
    from .inference.fit import fit
    from .regress import format_betas, regress

    outdir = Path(outdir)
    paths = {}
    for model in ("xray", "flim", "pl"):
        tune, draws = DEMO_SETTINGS[model]
        t0 = time.perf_counter()
        paths[model] = fit(reduced, outdir / f"posterior_{model}.nc", model=model, tune=tune,
                           draws=draws, seed=seed, progress=progress)  # fmt: skip
        print(f"fit --model {model}: wrote {paths[model]} ({time.perf_counter() - t0:.0f} s; "
              f"{diagnostics_line(paths[model])})")  # fmt: skip
    tune, draws = DEMO_SETTINGS["regress"]
    out, summary = regress(list(paths.values()), outdir / "regression.nc", tune=tune,
                           draws=draws, seed=seed, progress=progress)  # fmt: skip
    print(f"regress: {diagnostics_line(out)}")
    print(format_betas(summary))
    print(f"regress: wrote {out}")
    return paths | {"regression": out, "summary": summary}


def write_reports(outdir, paths: dict, reduced) -> Path:
    """A report per posterior and for the regression under ``outdir/reports/``, and an index
    ``reports/index.md`` linking them; returns the index's path."""
    from .io.h5util import atomic_path
    from .report import write_report

    root = Path(outdir) / "reports"
    root.mkdir(parents=True, exist_ok=True)
    lines = ["# bayes_sc demo: reports", ""]
    for name in ("regression", "xray", "flim", "pl"):
        t0 = time.perf_counter()
        md = write_report(paths[name], root / name,
                          reduced=None if name == "regression" else reduced)  # fmt: skip
        print(f"report {name}: wrote {md} ({time.perf_counter() - t0:.0f} s)")
        lines.append(f"- [{name}]({name}/report.md): `{Path(paths[name]).name}`")
    index = root / "index.md"
    with atomic_path(index) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return index
