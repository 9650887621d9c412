# ruff: noqa: E501  (a benchmark script: long report lines read better unwrapped)
"""Benchmark: the PL spatial posterior (``fit_pl``, defaults) on simulated paper-scale crystals.

For each seed a crystal the size of the simulator's default (25 × 25 scan at 0.5 µm: a
~9 µm supercrystal, PL points every 0.6 µm, ~200 spectra) is simulated with the preset's
``[simulate.pl]``, ``[simulate.xray]`` and ``[simulate.law]`` tables and fitted with the
default settings. Reported per seed and pooled: coverage of the E_peak and blueshift 90 %
intervals, RMSE of E_peak (posterior mean) against the truth beside the per-spectrum weighted
least-squares fit (:func:`bayes_sc.modeling.pl.first_estimates`) and that fit's ±1.645 se
coverage, diagnostics (divergences, max R-hat, min bulk ESS, BFMI, tree depth) and wall time.

Usage::

    python benchmarks/fit_pl.py [--seeds 1 2 3] [--draws 1000] [--tune 1000] [--size-um 12.5]

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

from bayes_sc.presets import load_preset
from bayes_sc.simulate.fields import crystal_outline
from bayes_sc.simulate.optics import simulate_pl

NAMES = ["E_peak", "blueshift", "pl_fwhm", "pl_amplitude", "pl_background", "pl_read_noise",
         "pl_gain", "E_peak_mu", "E_peak_sd", "E_peak_rho"]  # fmt: skip


def one_crystal(preset, seed, size_um, draws, tune):
    import arviz as az

    from bayes_sc.inference.fit_pl import fit_pl
    from bayes_sc.modeling.pl import first_estimates
    from bayes_sc.modeling.pl_data import load_pl

    sim = preset["simulate"]
    rng = np.random.default_rng(seed)
    extent = np.array([size_um, size_um])
    # as bayes_sc.simulate does for the optical crystal: outline at 0.36 of the field of view
    outline = crystal_outline(extent / 2, 0.36 * extent, rng)
    lam, counts, (x, y), truth = simulate_pl(outline, sim["pl"], sim["xray"], sim["law"], rng)
    with tempfile.TemporaryDirectory() as tmp:
        red = Path(tmp) / "reduced.h5"
        with h5py.File(red, "w") as f:
            f.attrs["material"] = "cspbbr2cl"
            g = f.create_group("pl")
            g["wavelength_nm"], g["counts"], g["x_um"], g["y_um"] = lam, counts, x, y
            g["outline_um"] = outline
        ls = first_estimates(load_pl(red), preset)
        t0 = time.perf_counter()
        tree = fit_pl(red, preset, seed=seed, progress=False, draws=draws, tune=tune)
        wall = time.perf_counter() - t0
    post = tree["posterior"].to_dataset()
    e_true, b_true = truth["E_peak"], truth["blueshift"]
    e = post["E_peak"].values.reshape(-1, e_true.size)
    b = post["blueshift"].values.reshape(-1, e_true.size)

    def covered(d, want):
        lo, hi = np.quantile(d, [0.05, 0.95], axis=0)
        return (want >= lo) & (want <= hi)

    ess, rhat = az.ess(post[NAMES]), az.rhat(post[NAMES])
    ss = tree["sample_stats"].to_dataset()
    ls_cover = np.abs(ls["E_peak"] - e_true) <= 1.645 * ls["E_peak_se"]
    return {
        "seed": seed, "points": int(e_true.size), "wall_s": wall,
        "sampling_s": float(tree.attrs["sampling_time_s"]),
        "e_peak_centred": int(tree.attrs["e_peak_centred"]),
        "covered_E": int(covered(e, e_true).sum()), "covered_blueshift": int(covered(b, b_true).sum()),
        "coverage90_E": float(covered(e, e_true).mean()),
        "coverage90_blueshift": float(covered(b, b_true).mean()),
        "rmse_E_meV": 1e3 * float(np.sqrt(np.mean((e.mean(0) - e_true) ** 2))),
        "rmse_E_ls_meV": 1e3 * float(np.sqrt(np.mean((ls["E_peak"] - e_true) ** 2))),
        "coverage90_E_ls": float(ls_cover.mean()),
        "mean_sd_E_meV": 1e3 * float(e.std(0).mean()),
        "divergences": int(ss["diverging"].sum()),
        "max_rhat": float(max(float(rhat[v].max()) for v in NAMES)),
        "min_ess_bulk": float(min(float(ess[v].min()) for v in NAMES)),
        "min_bfmi": float(az.bfmi(tree)["energy"].min()),
        "mean_tree_depth": float(ss["tree_depth"].mean()),
        "gain": float(post["pl_gain"].mean()), "read_noise": float(post["pl_read_noise"].mean()),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--size-um", type=float, default=12.5, help="field of view [µm] (25 × 0.5)")
    args = ap.parse_args()
    from bayes_sc.inference.sample import enable_parallel_chains

    enable_parallel_chains(2)
    preset = load_preset("cspbbr2cl")
    runs = []
    for seed in args.seeds:
        r = one_crystal(preset, seed, args.size_um, args.draws, args.tune)
        runs.append(r)
        print(f"seed {seed}: {r['points']} points, {r['wall_s']:.0f} s (sampling {r['sampling_s']:.0f} s); "
              f"E_peak 90 % coverage {r['coverage90_E']:.3f}, blueshift {r['coverage90_blueshift']:.3f}; "
              f"RMSE {r['rmse_E_meV']:.3f} meV vs per-spectrum LS {r['rmse_E_ls_meV']:.3f} meV "
              f"(LS ±1.645 se coverage {r['coverage90_E_ls']:.3f}); divergences {r['divergences']}, "
              f"max R-hat {r['max_rhat']:.3f}, min ESS {r['min_ess_bulk']:.0f}, min BFMI "
              f"{r['min_bfmi']:.2f}, tree depth {r['mean_tree_depth']:.1f}")  # fmt: skip
    n = sum(r["points"] for r in runs)
    cover = sum(r["covered_E"] for r in runs) / n
    out = {
        "seeds": args.seeds, "points": n, "draws": args.draws, "tune": args.tune,
        "coverage90_E": cover, "coverage90_E_binomial_sd": float(np.sqrt(0.09 / n)),
        "coverage90_blueshift": sum(r["covered_blueshift"] for r in runs) / n,
        "rmse_E_meV": float(np.mean([r["rmse_E_meV"] for r in runs])),
        "rmse_E_ls_meV": float(np.mean([r["rmse_E_ls_meV"] for r in runs])),
        "ratio_rmse_ls": float(np.mean([r["rmse_E_ls_meV"] / r["rmse_E_meV"] for r in runs])),
        "divergences": sum(r["divergences"] for r in runs),
        "max_rhat": max(r["max_rhat"] for r in runs),
        "min_ess_bulk": min(r["min_ess_bulk"] for r in runs),
        "wall_s_mean": float(np.mean([r["wall_s"] for r in runs])), "runs": runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }  # fmt: skip
    print(f"pooled: {n} points, E_peak 90 % coverage {cover:.3f} (binomial sd {out['coverage90_E_binomial_sd']:.3f}), "
          f"blueshift {out['coverage90_blueshift']:.3f}; RMSE {out['rmse_E_meV']:.3f} meV vs LS "
          f"{out['rmse_E_ls_meV']:.3f} meV; divergences {out['divergences']}, max R-hat "
          f"{out['max_rhat']:.3f}, min ESS {out['min_ess_bulk']:.0f}")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
