"""Coverage of the regression's β over replicate crystals with a known law (issue 7).

Each replicate draws a synthetic crystal (true fields and optical responses from the
simulator's ``[simulate.*]`` tables and law) and writes calibrated posteriors of it
(:mod:`bayes_sc.simulate.posteriors`: every marginal covers its truth by construction), then
runs ``regress`` on them. Reported: the fraction of replicates whose 90 % interval of each β
covers the law's value, the root-mean-square error of the posterior mean over the mean
posterior sd (1 when calibrated, < 1 when the intervals are wider than the estimate's actual
scatter), diagnostics, and, with ``--pool 3``, the interval widths of β from three crystals
pooled against the first crystal alone.

    python benchmarks/regress_coverage.py --replicates 20 [--separable | --scales 0.5,1.5,5]
        [--pool 3] [--scan 12x12]

``--separable`` gives the covariates different edge-distance profile scales (⟨a⟩ 0.6 µm,
δψ 2.0 µm, g_q 20 µm), the default preset's are collinear (⟨a⟩ and δψ share one shape).
``--crystal-spread f`` draws each crystal's slopes about the law, β_k = β (1 + f z), z ~ N(0, 1)
per crystal, response and covariate (crystals of one material differing as the pooled model
allows); the truth to cover is then the law's β, the population's mean. Without it every
crystal follows the law exactly, the boundary (crystal-level sd 0) of the pooled model.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import arviz as az
import numpy as np
import xarray as xr

from bayes_sc.presets import load_preset
from bayes_sc.regress import regress
from bayes_sc.simulate.optics import law_coefficients
from bayes_sc.simulate.posteriors import synthetic_crystal

SEPARABLE = {"a_mean": 0.6, "delta_psi": 2.0, "g_q": 20.0}


def crystal_law(preset: dict, rng, spread: float) -> dict:
    """``preset`` with its ``[simulate.law]`` slopes scaled by (1 + spread z), z ~ N(0, 1) each."""
    law = dict(preset["simulate"]["law"])
    for key in law:
        if "_per_" in key:
            law[key] = float(law[key]) * (1.0 + spread * rng.standard_normal())
    return preset | {"simulate": preset["simulate"] | {"law": law}}


def run_one(paths_list, out, seed, draws, settings=None):
    t0 = time.perf_counter()
    files = [p for paths in paths_list for p in (paths["xray"], paths["flim"], paths["pl"])]
    _, summary = regress(files, out, seed=seed, draws=draws, progress=False, settings_path=settings)
    tree = xr.open_datatree(out)
    post = tree["posterior"].to_dataset()
    rhat = float(az.rhat(post).to_array().max())
    div = int(tree["sample_stats"]["diverging"].sum())
    return summary, {
        "rhat": rhat,
        "divergences": div,
        "seconds": time.perf_counter() - t0,
        "warned": bool(summary["warnings"]),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--separable", action="store_true")
    ap.add_argument("--scales", help="profile scales [um] of a_mean,delta_psi,g_q (overrides "
                    "--separable's 0.6,2.0,20)")  # fmt: skip
    ap.add_argument("--pool", type=int, default=1, help="crystals pooled per replicate")
    ap.add_argument(
        "--draws", type=int, default=2000, help="kept draws per chain (regress's default)"
    )
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--scan", default="25x25", help="X-ray scan of each crystal, NYxNX (optical "
                    "images scale with it)")  # fmt: skip
    ap.add_argument("--settings", type=Path, help="regression settings (default: "
                    "models/regression.toml)")  # fmt: skip
    ap.add_argument("--crystal-spread", type=float, default=0.0,
                    help="relative sd of each crystal's slopes about the law")  # fmt: skip
    ap.add_argument("--no-single", action="store_true",
                    help="with --pool: skip the one-crystal fits (their widths)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    single = args.pool > 1 and not args.no_single  # also fit the first crystal alone
    scan = tuple(int(v) for v in args.scan.lower().split("x"))
    preset = load_preset("cspbbr2cl")
    if args.separable or args.scales:
        scales = SEPARABLE
        if args.scales:
            scales = dict(zip(SEPARABLE, (float(v) for v in args.scales.split(",")), strict=True))
        preset = dict(preset)
        preset["simulate"] = dict(preset["simulate"])
        preset["simulate"]["xray"] = dict(preset["simulate"]["xray"], profile_scale_um=scales)
    hits, errors, rows, widths = {}, {}, [], {"pooled": {}, "single": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.replicates):
            rng = np.random.default_rng(args.seed + rep)
            law_rng = np.random.default_rng([args.seed + rep, 1])  # same crystals as spread 0
            crystals = [
                synthetic_crystal(
                    Path(tmp) / f"r{rep}c{k}",
                    crystal_law(preset, law_rng, args.crystal_spread),
                    rng,
                    name=f"SC{k}",
                    scan=scan,
                )
                for k in range(args.pool)
            ]
            truth = law_coefficients(preset["simulate"]["law"])  # the population's law
            summary, diag = run_one(
                crystals, Path(tmp) / f"r{rep}.nc", rep, args.draws, args.settings
            )
            fits = {"pooled": summary}
            if single:
                fits["single"], _ = run_one(
                    crystals[:1], Path(tmp) / f"r{rep}s.nc", rep, args.draws, args.settings
                )
            for key, b in summary["beta"].items():
                r, c = key.split("/")
                hits.setdefault(key, []).append(b["lower"] <= truth[r][c] <= b["upper"])
                errors.setdefault(key, []).append((b["mean"] - truth[r][c], b["sd"]))
            for kind, s in fits.items():
                for key, b in s["beta"].items():
                    widths[kind].setdefault(key, []).append(b["upper"] - b["lower"])
            rows.append(diag)
            print(
                f"replicate {rep}: R-hat {diag['rhat']:.3f}, {diag['divergences']} div, "
                f"{diag['seconds']:.0f} s, warned {diag['warned']}",
                flush=True,
            )
    print(
        f"\n{'beta':<22} {'coverage':>9} {'mean width':>11} {'rms error/mean sd':>18} "
        f"{'mean error/mean sd':>19}" + (f" {'1-crystal width':>16}" if single else "")
    )
    result = {"replicates": args.replicates, "separable": args.separable, "scales": args.scales,
              "pool": args.pool, "crystal_spread": args.crystal_spread,
              "scan": args.scan}  # fmt: skip
    for key, h in hits.items():
        cov = float(np.mean(h))
        w = float(np.mean(widths["pooled"][key]))
        err = np.array(errors[key])
        # Posterior sd against the posterior mean's actual error: 1 when calibrated, < 1 when
        # the intervals are wider than the estimate's scatter about the truth (over-coverage).
        ratio = float(np.sqrt(np.mean(err[:, 0] ** 2)) / np.mean(err[:, 1]))
        bias = float(np.mean(err[:, 0]) / np.mean(err[:, 1]))  # the same sign every time?
        line = f"{key:<22} {cov:>9.2f} {w:>11.4g} {ratio:>18.2f} {bias:>+19.2f}"
        result[f"coverage/{key}"] = cov
        result[f"rms_error_over_sd/{key}"] = ratio
        result[f"mean_error_over_sd/{key}"] = bias
        result[f"width/{key}"] = w
        if single:
            w1 = float(np.mean(widths["single"][key]))
            line += f" {w1:>16.4g}"
            result[f"width_single/{key}"] = w1
        print(line)
    result.update(
        max_rhat=max(r["rhat"] for r in rows),
        divergences=sum(r["divergences"] for r in rows),
        mean_seconds=float(np.mean([r["seconds"] for r in rows])),
        warned_fraction=float(np.mean([r["warned"] for r in rows])),
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
