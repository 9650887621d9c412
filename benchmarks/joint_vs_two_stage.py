# ruff: noqa: E501  (a benchmark script: long report lines read better unwrapped)
"""Benchmark: the joint model against the two-stage regression on demo-size crystals.

For each seed a demo-size crystal (``bayes-sc simulate --scan 6x6``: X-ray scan, FLIM image,
PL spectra of one simulated supercrystal with the preset's known law) is reduced and fitted
twice:

- two-stage: ``fit --model xray|flim|pl`` (the demo's settings), then ``regress``;
- joint: ``fit --model joint`` (X-ray, FLIM and PL likelihoods and the law in one posterior).

Reported per seed: every β with its 90 % interval from both, whether the intervals overlap,
whether each covers the simulator's true law, diagnostics (max R-hat, min bulk ESS,
divergences) of every posterior and the wall times.

Usage::

    python benchmarks/joint_vs_two_stage.py [--seeds 0 1 2] [--draws 2000] [--tune 1000] [--out DIR]

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from bayes_sc.demo import DEMO_SETTINGS


def diagnostics(path) -> dict:
    import arviz as az

    tree = xr.open_datatree(path)
    post = tree["posterior"].to_dataset().reset_coords(drop=True)
    return {
        # per variable: the variables' dims differ, and one array of all would broadcast them
        "max_rhat": max(float(v.max()) for v in az.rhat(post).data_vars.values()),
        "min_ess_bulk": min(float(v.min()) for v in az.ess(post, method="bulk").data_vars.values()),
        "divergences": int(tree["sample_stats"]["diverging"].sum()),
        "sampling_time_s": float(tree.attrs.get("sampling_time_s", np.nan)),
    }


def intervals(path, prob=0.9) -> dict:
    post = xr.open_datatree(path)["posterior"].to_dataset()
    out = {}
    for r in post["response"].values:
        for c in post["covariate"].values:
            v = post["beta"].sel(response=r, covariate=c).values.ravel()
            lo, hi = np.quantile(v, [0.5 - prob / 2, 0.5 + prob / 2])
            out[f"{r}/{c}"] = (float(v.mean()), float(lo), float(hi))
    return out


def true_law(sim_dir) -> dict:
    """β of the simulator's law, per response/covariate, from truth.h5 if it records them."""
    with h5py.File(Path(sim_dir) / "truth.h5", "r") as f:
        if "law" not in f:
            return {}
        g = f["law"]
        covs = [c.decode() if isinstance(c, bytes) else str(c) for c in g["covariates"][()]]
        return {
            f"{r}/{c}": float(b)
            for r in ("tau", "blueshift")
            for c, b in zip(covs, g[r]["beta"][()], strict=True)
        }


def one_seed(seed, workdir: Path, draws, tune) -> dict:
    from bayes_sc.inference.fit import fit
    from bayes_sc.reduce import reduce_dataset
    from bayes_sc.regress import regress
    from bayes_sc.simulate import simulate_supercrystal

    sim = workdir / f"sim{seed}"
    manifest = simulate_supercrystal(sim, scan_shape=(6, 6), seed=seed, progress=False)
    reduced = workdir / f"reduced{seed}.h5"
    reduce_dataset(manifest, reduced, progress=False)
    times, paths = {}, {}
    for model in ("xray", "flim", "pl"):
        t_, d_ = DEMO_SETTINGS[model]
        t0 = time.perf_counter()
        paths[model] = fit(
            reduced,
            workdir / f"{model}{seed}.nc",
            model=model,
            tune=t_,
            draws=d_,
            seed=seed,
            progress=False,
        )
        times[model] = time.perf_counter() - t0
    t_, d_ = DEMO_SETTINGS["regress"]
    t0 = time.perf_counter()
    reg, _ = regress(
        list(paths.values()),
        workdir / f"regression{seed}.nc",
        tune=t_,
        draws=d_,
        seed=seed,
        progress=False,
    )
    times["regress"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    joint = fit(
        reduced,
        workdir / f"joint{seed}.nc",
        model="joint",
        tune=tune,
        draws=draws,
        seed=seed,
        progress=False,
    )
    times["joint"] = time.perf_counter() - t0
    two, one = intervals(reg), intervals(joint)
    truth = true_law(sim)
    rows = {}
    for key in one:
        a, b = two[key], one[key]
        rows[key] = {
            "two_stage": a,
            "joint": b,
            "overlap": bool(a[1] <= b[2] and b[1] <= a[2]),
            "truth": truth.get(key),
            "two_stage_covers": None if key not in truth else bool(a[1] <= truth[key] <= a[2]),
            "joint_covers": None if key not in truth else bool(b[1] <= truth[key] <= b[2]),
        }
    diag = {m: diagnostics(p) for m, p in (paths | {"regress": reg, "joint": joint}).items()}
    return {"seed": seed, "beta": rows, "diagnostics": diag, "wall_s": times}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--draws", type=int, default=2000, help="joint: kept draws per chain "
                    "(fit's default)")  # fmt: skip
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--out", type=Path, help="keep the files here (default: a temporary folder)")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            res = one_seed(seed, work, args.draws, args.tune)
            results.append(res)
            print(
                f"seed {seed}: wall "
                + ", ".join(f"{k} {v:.0f} s" for k, v in res["wall_s"].items())
            )
            for m, d in res["diagnostics"].items():
                print(
                    f"  {m:8s} max R-hat {d['max_rhat']:.3f}  min ESS {d['min_ess_bulk']:.0f}  divergences {d['divergences']}"
                )
            for key, row in res["beta"].items():
                a, b = row["two_stage"], row["joint"]
                print(
                    f"  {key:22s} two-stage {a[0]:+9.4g} [{a[1]:+.4g}, {a[2]:+.4g}]  joint {b[0]:+9.4g} [{b[1]:+.4g}, {b[2]:+.4g}]  overlap {row['overlap']}  truth {row['truth']}"
                )
    n_pairs = sum(len(r["beta"]) for r in results)
    n_overlap = sum(row["overlap"] for r in results for row in r["beta"].values())
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "draws": args.draws,
        "tune": args.tune,
        "overlapping_intervals": f"{n_overlap}/{n_pairs}",
        "results": results,
    }
    print(f"90 % intervals overlap for {n_overlap} of {n_pairs} (seed, response, covariate)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
