"""Benchmark: the default X-ray fit at several scan sizes — wall time, diagnostics, accuracy.

For each simulated scan (``--sizes 10x10 18x18 25x25``, seed ``--seed``) it reduces the frames,
fits the X-ray model with the default settings (summary likelihood, numpyro, 2 chains,
1000 + 1000), and reports: wall time of the fit (summaries + sampling), divergences, max
R-hat, min bulk ESS, min BFMI; per field the 90 % interval coverage of the truth over crystal
pixels and the RMSE of the posterior mean beside the paper-style baseline's RMSE on the same
data; a_AL and L_nc against the truth; and the fitted exponent of wall time vs crystal pixels.
Its last line is one JSON object. Usage::

    python benchmarks/fit_xray.py [--sizes 10x10 25x25] [--seed 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import arviz as az
import h5py
import numpy as np

from bayes_sc.baseline import baseline_xray
from bayes_sc.inference.fit import fit_xray
from bayes_sc.modeling.xray_data import load_xray
from bayes_sc.presets import load_preset

FIELDS = ("a1", "a2", "a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")
CIRCULAR = {"phi": 180.0, "psi": 90.0}


def dataset(workdir: Path, size: str, seed: int) -> tuple[Path, Path]:
    """Simulated scan and its reduced.h5 (cached in ``workdir``)."""
    from bayes_sc.reduce import reduce_dataset
    from bayes_sc.simulate import simulate_supercrystal

    ny, nx = (int(v) for v in size.split("x"))
    d = workdir / f"sc_{size}_s{seed}"
    manifest = d / "supercrystal.toml"
    if not manifest.exists():
        simulate_supercrystal(d, scan_shape=(ny, nx), seed=seed, progress=False)
    reduced = d / "reduced.h5"
    if not reduced.exists():
        reduce_dataset(manifest, reduced, progress=False)
    return reduced, d / "truth.h5"


def diff(name, a, b):
    d = np.asarray(a, float) - np.asarray(b, float)
    if name in CIRCULAR:
        p = CIRCULAR[name]
        d = (d + p / 2) % p - p / 2
    return d


def evaluate(tree, truth_path: Path, reduced: Path, preset: dict, baseline: bool = True) -> dict:
    """Coverage, RMSE (beside the baseline's unless ``baseline`` is false), diagnostics."""
    post = tree["posterior"].to_dataset()
    rows, cols = post["xray_row"].values, post["xray_col"].values
    with h5py.File(truth_path) as f:
        truth = {k: f["xray"][k][()] for k in (*FIELDS, "a_AL", "L_nc")}
    base = baseline_xray(load_xray(reduced), preset) if baseline else None
    out = {"fields": {}}
    for name in FIELDS:
        draws = post[name].values.reshape(-1, rows.size)
        want = truth[name][rows, cols]
        if name in CIRCULAR:  # intervals of a circular quantity around its posterior mean
            centre = draws.mean(0)
            draws = centre + diff(name, draws, centre)
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        w = want + np.round((draws.mean(0) - want) / CIRCULAR[name]) * CIRCULAR[name] \
            if name in CIRCULAR else want  # fmt: skip
        cover = float(np.mean((w >= lo) & (w <= hi)))
        rmse = float(np.sqrt(np.mean(diff(name, draws.mean(0), want) ** 2)))
        b = base[name][rows, cols] if base is not None else np.full(rows.size, np.nan)
        ok = np.isfinite(b)
        rmse_b = float(np.sqrt(np.mean(diff(name, b[ok], want[ok]) ** 2))) if ok.any() else None
        out["fields"][name] = {"coverage90": cover, "rmse": rmse, "rmse_baseline": rmse_b,
                               "baseline_missing": int((~ok).sum())}  # fmt: skip
    for name in ("a_AL", "L_nc"):
        d = post[name].values.ravel()
        lo, hi = np.quantile(d, [0.05, 0.95])
        out[name] = {"mean": float(d.mean()), "sd": float(d.std()), "truth": float(truth[name]),
                     "covered90": bool(lo <= truth[name] <= hi)}  # fmt: skip
    ss = tree["sample_stats"].to_dataset()
    names = [v for v in post.data_vars if not v.endswith("_u")]
    ess = az.ess(post[names])
    rhat = az.rhat(post[names])
    out["diagnostics"] = {
        "divergences": int(ss["diverging"].sum()),
        "max_rhat": float(max(float(rhat[v].max()) for v in names)),
        "min_ess_bulk": float(min(float(ess[v].min()) for v in names)),
        "min_bfmi": float(az.bfmi(tree)["energy"].min()),
        "mean_tree_depth": float(ss["tree_depth"].mean()) if "tree_depth" in ss else None,
        "step_size": ss["step_size"].mean("draw").values.tolist() if "step_size" in ss else None,
        "sampling_time_s": tree.attrs.get("sampling_time_s"),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["10x10", "18x18", "25x25"])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bayes_sc_bench_fit"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    preset = load_preset("cspbbr2cl")
    results = []
    for size in args.sizes:
        reduced, truth = dataset(args.workdir, size, args.seed)
        t0 = time.perf_counter()
        tree = fit_xray(reduced, preset, draws=args.draws, tune=args.tune, seed=args.seed,
                        progress=False)  # fmt: skip
        wall = time.perf_counter() - t0
        res = {"size": size, "pixels": int(tree.attrs["n_pixels"]), "wall_s": wall}
        res.update(evaluate(tree, truth, reduced, preset))
        results.append(res)
        d = res["diagnostics"]
        print(f"{size}: {res['pixels']} crystal pixels, {wall:.0f} s; divergences "
              f"{d['divergences']}, max R-hat {d['max_rhat']:.3f}, "
              f"min ESS {d['min_ess_bulk']:.0f}, min BFMI {d['min_bfmi']:.2f}, "
              f"mean tree depth {d['mean_tree_depth']}, step size {d['step_size']}, "
              f"sampling {d['sampling_time_s']:.0f} s")  # fmt: skip
        print(f"  {'field':10s} {'cover90':>8s} {'RMSE':>10s} {'baseline':>10s} {'ratio':>6s}")
        for name, f in res["fields"].items():
            ratio = f["rmse"] / f["rmse_baseline"] if f["rmse_baseline"] else float("nan")
            print(f"  {name:10s} {f['coverage90']:8.3f} {f['rmse']:10.4g} "
                  f"{f['rmse_baseline'] or float('nan'):10.4g} {ratio:6.2f}")  # fmt: skip
        for name in ("a_AL", "L_nc"):
            g = res[name]
            print(f"  {name}: {g['mean']:.5g} ± {g['sd']:.2g} (truth {g['truth']}, "
                  f"90 % covered: {g['covered90']})")  # fmt: skip
    exponent = None
    if len(results) >= 2:
        px = np.log([r["pixels"] for r in results])
        wt = np.log([r["wall_s"] for r in results])
        exponent = float(np.polyfit(px, wt, 1)[0])
        print(f"wall time ∝ pixels^{exponent:.2f}")
    print(json.dumps({"results": results, "time_exponent": exponent, "seed": args.seed,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores"}))  # fmt: skip


if __name__ == "__main__":
    main()
