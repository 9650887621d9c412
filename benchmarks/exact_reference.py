"""The exact Poisson X-ray likelihood as the reference: crops of a simulated scan, with truth.

The exact likelihood (Poisson on every bin of every peak window) is the model's reference and
the slow one: on 2 CPU cores a 6 × 6 crop takes over an hour (a GPU is where it belongs;
see docs/benchmarks.md for what was measured there). For each crop
(``--crops 10:16,10:16 7:19,7:19 all``) and likelihood (``--likelihoods exact,summary``) this
fits the default X-ray model (2 chains, 1000 + 1000) and reports wall time, diagnostics, every
field's 90 % coverage of the simulator's truth and RMSE, and a_AL, L_nc against the truth. Per
fit it writes ``--out/<likelihood>_<crop>.npz`` (per-pixel posterior mean, sd, 5 % and 95 %
quantiles of each field, pixel rows/columns; the globals' draws) and ``.json``, so a fit made
on another machine (the summary path on the CPU) can be compared pixel by pixel. Usage::

    python benchmarks/exact_reference.py --reduced reduced.h5 --truth truth.h5 --out DIR
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from fit_xray import FIELDS, evaluate  # noqa: E402

from bayes_sc.inference.fit import fit_xray, parse_crop  # noqa: E402
from bayes_sc.inference.sample import enable_parallel_chains  # noqa: E402
from bayes_sc.presets import load_preset  # noqa: E402


def summarise(tree) -> dict:
    """Per-pixel posterior mean, sd and 90 % interval of every field; the globals' draws."""
    post = tree["posterior"].to_dataset()
    out = {"rows": post["xray_row"].values, "cols": post["xray_col"].values}
    for name in FIELDS:
        d = post[name].values.reshape(-1, out["rows"].size)
        out[f"{name}_mean"], out[f"{name}_sd"] = d.mean(0), d.std(0)
        out[f"{name}_q05"], out[f"{name}_q95"] = np.quantile(d, [0.05, 0.95], axis=0)
    for name in ("a_AL", "L_nc"):
        out[name] = post[name].values.ravel()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reduced", type=Path, required=True)
    ap.add_argument("--truth", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--crops", nargs="+", default=["10:16,10:16"],
                    help="row0:row1,col0:col1 slices of the scan, or 'all'")  # fmt: skip
    ap.add_argument("--likelihoods", default="exact")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    enable_parallel_chains(2)  # before JAX starts: the CPU's cores as devices, one per chain
    import jax

    device = f"{jax.default_backend()}: {jax.devices()[0].device_kind}"
    args.out.mkdir(parents=True, exist_ok=True)
    preset = load_preset("cspbbr2cl")
    for crop in args.crops:
        for lik in args.likelihoods.split(","):
            t0 = time.perf_counter()
            tree = fit_xray(
                args.reduced, preset, crop=None if crop == "all" else parse_crop(crop),
                draws=args.draws, tune=args.tune, seed=args.seed, progress=False, likelihood=lik,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            res = {"crop": crop, "likelihood": lik, "pixels": int(tree.attrs["n_pixels"]),
                   "wall_s": wall, "sampling_s": float(tree.attrs["sampling_time_s"]),
                   "device": device, "machine": platform.machine(), "draws": args.draws,
                   "tune": args.tune}  # fmt: skip
            res.update(evaluate(tree, args.truth, args.reduced, preset, baseline=False))
            tag = f"{lik}_{crop.replace(':', '-').replace(',', '_')}"
            np.savez(args.out / f"{tag}.npz", **summarise(tree))
            (args.out / f"{tag}.json").write_text(json.dumps(res, indent=1))
            d = res["diagnostics"]
            print(f"{crop} {lik}: {res['pixels']} px, wall {wall:.0f} s (sampling "
                  f"{res['sampling_s']:.0f} s) on {device}; divergences {d['divergences']}, "
                  f"max R-hat {d['max_rhat']:.3f}, min ESS {d['min_ess_bulk']:.0f}, "
                  f"min BFMI {d['min_bfmi']:.2f}, depth {d['mean_tree_depth']:.1f}")  # fmt: skip
            for name, f in res["fields"].items():
                print(f"  {name:10s} cover90 {f['coverage90']:.3f} RMSE {f['rmse']:.4g}")
            for name in ("a_AL", "L_nc"):
                g = res[name]
                print(f"  {name}: {g['mean']:.5g} ± {g['sd']:.2g} (truth {g['truth']}, "
                      f"covered {g['covered90']})")  # fmt: skip
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
