"""The fast (summary) X-ray likelihood against the exact Poisson one on a crop of a scan.

Fits both likelihoods to the same crop with the same settings and reports, per field and
pixel, the difference of posterior means in units of the exact posterior sd and the ratio of
90 % interval widths (issue 5: means within ½ sd, widths within 20 %). Its last line is one
JSON object. Usage::

    python benchmarks/fast_vs_exact.py --reduced reduced.h5 --crop 10:16,10:16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from bayes_sc.inference.fit import fit_xray, parse_crop
from bayes_sc.presets import load_preset

FIELDS = ("a1", "a2", "a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reduced", type=Path, required=True)
    ap.add_argument("--crop", default="10:16,10:16")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder keeping each posterior (reused when present: the exact fit "
                         "takes an hour, so the summary side can be refitted alone)")  # fmt: skip
    args = ap.parse_args()
    preset = load_preset("cspbbr2cl")
    trees, walls = {}, {}
    for lik in ("summary", "exact"):
        cached = args.cache / f"{lik}.nc" if args.cache else None
        if cached and cached.exists():
            trees[lik] = xr.open_datatree(cached)
            walls[lik] = float(trees[lik].attrs.get("wall_s", float("nan")))
            continue
        t0 = time.perf_counter()
        trees[lik] = fit_xray(
            args.reduced, preset, crop=parse_crop(args.crop), draws=args.draws, tune=args.tune,
            seed=args.seed, progress=False, likelihood=lik,
        )  # fmt: skip
        walls[lik] = time.perf_counter() - t0
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            trees[lik].attrs["wall_s"] = walls[lik]
            trees[lik].to_netcdf(cached)
    out = {"crop": args.crop, "wall_s": walls, "fields": {}}
    print(f"crop {args.crop}: summary {walls['summary']:.0f} s, exact {walls['exact']:.0f} s")
    print(
        f"{'field':10s} {'max|Δmean|/sd':>14s} {'median':>8s} {'width ratio min':>16s} {'max':>6s}"
    )
    for name in (*FIELDS, "a_AL", "L_nc"):
        f, e = (trees[k]["posterior"][name].values for k in ("summary", "exact"))
        f = f.reshape(-1, *f.shape[2:])
        e = e.reshape(-1, *e.shape[2:])
        dz = np.abs(f.mean(0) - e.mean(0)) / e.std(0)
        wf = np.diff(np.quantile(f, [0.05, 0.95], axis=0), axis=0)[0]
        we = np.diff(np.quantile(e, [0.05, 0.95], axis=0), axis=0)[0]
        ratio = np.atleast_1d(wf / we)
        dz = np.atleast_1d(dz)
        out["fields"][name] = {"max_dmean_sd": float(dz.max()), "median_dmean_sd": float(
            np.median(dz)), "width_ratio_min": float(ratio.min()), "width_ratio_max": float(
            ratio.max())}  # fmt: skip
        print(f"{name:10s} {dz.max():14.2f} {np.median(dz):8.2f} {ratio.min():16.2f} "
              f"{ratio.max():6.2f}")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
