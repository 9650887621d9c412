# ruff: noqa: E501  (a benchmark script: long report lines read better unwrapped)
"""Benchmark: FLIM precision (F-value vs Cramér–Rao), per-pixel fit speed vs flimlib, and the
spatial posterior of a 48 × 48 image.

(a) Monte-Carlo F-value ``F = sd(τ̂)/τ · √photons`` of our per-pixel Poisson MAP (the merged-bin
    model) and of per-pixel least squares, at 1000 photons and τ = 2 ns, against the Cramér–Rao
    F for the native bins and the same IRF (parameters τ, A and the background b).
(b) Pixels per second of our per-pixel MAP (JAX, vmapped, compiled once) and of flimlib's LMA
    (``GCI_marquardt_fitting_engine``, Poisson-fit noise, the same merged histograms and IRF).
(c) Wall time, diagnostics, coverage and RMSE (beside per-pixel ML and LS) of the default
    spatial posterior (``fit_flim``) of a simulated 48 × 48 image.

Usage::

    python benchmarks/flim.py [--pixels 2000] [--seed 1] [--skip-posterior]

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

from bayes_sc.baseline.flim import fit_pixels
from bayes_sc.modeling.flim_data import FlimData
from bayes_sc.modeling.graph import grid_graph
from bayes_sc.physics.flim import flim_expected_counts
from bayes_sc.physics.flim_binned import merge_bins
from bayes_sc.presets import load_preset
from bayes_sc.simulate.fields import crystal_outline, grid_mask
from bayes_sc.simulate.optics import simulate_flim

TAU, PHOTONS, SHIFT_PS, BG = 2.0, 1000.0, 85.0, 0.002


def true_irf(cfg):
    """The simulator's IRF (Gaussian pulse with a slow tail), native bins."""
    from bayes_sc.physics.flim import gaussian_irf

    bin_ns = cfg["bin_ps"] / 1e3
    n = int(round(cfg["period_ns"] / bin_ns))
    g = gaussian_irf(n, bin_ns, 2.0, cfg["irf_fwhm_ps"] / 1e3)
    g = np.convolve(g, np.exp(-np.arange(60) * bin_ns / 0.05))[:n]
    return g / g.sum(), bin_ns, n


def cramer_rao_f(irf, bin_ns, period):
    """Cramér–Rao F at the native bins for (τ, A, b) unknown."""
    theta = np.array([TAU, PHOTONS, BG])
    eps = np.array([1e-5, 1e-3, 1e-7])

    def mu(t):
        return flim_expected_counts(irf, bin_ns, period, t[0], t[1], SHIFT_PS, t[2])

    m = mu(theta)
    J = np.stack(
        [(mu(theta + e) - mu(theta - e)) / (2 * e[i]) for i, e in enumerate(np.diag(eps))], 1
    )
    fisher = (J / m[:, None]).T @ J
    sd_tau = np.sqrt(np.linalg.inv(fisher)[0, 0])
    return float(sd_tau / TAU * np.sqrt(PHOTONS))


def synthetic_pixels(irf, bin_ns, n, period, n_pix, merge, rng):
    """FlimData of ``n_pix`` identical pixels (τ = 2 ns, 1000 photons) with Poisson noise."""
    native = flim_expected_counts(irf, bin_ns, period, TAU, PHOTONS, SHIFT_PS, BG)
    counts = rng.poisson(np.tile(merge_bins(native, merge), (n_pix, 1)))
    mask = np.ones((n_pix // 50, 50), bool)
    return FlimData(path=None, counts=counts, irf=irf, bin_ns=bin_ns, period_ns=period, n_bins=n,
                    merge=merge, pixel_um=0.2, pixel_um_known=True, photons=counts.sum(1).reshape(mask.shape),
                    crystal_mask=mask, graph=grid_graph(mask), edge_um=np.ones(mask.shape))  # fmt: skip


def flimlib_fit(data):
    """flimlib's LMA on the merged histograms: (τ [ns], pixels/s)."""
    import flimlib

    irf_m = merge_bins(data.irf, data.merge)
    period = data.bin_ns * data.merge
    y = data.counts.astype(np.float32)
    p0 = np.tile(
        np.array([BG * data.merge, y.sum(1).mean() * period / TAU, TAU], np.float32),
        (y.shape[0], 1),
    )
    flimlib.GCI_marquardt_fitting_engine(
        period, y[:2], p0[:2].copy(), instr=irf_m / irf_m.sum()
    )  # warm
    t0 = time.perf_counter()
    res = flimlib.GCI_marquardt_fitting_engine(period, y, p0.copy(), instr=irf_m / irf_m.sum())
    dt = time.perf_counter() - t0
    return np.asarray(res.param)[:, 2], y.shape[0] / dt


def write_reduced(path, counts, irf, cfg, pixel_um):
    with h5py.File(path, "w") as f:
        g = f.create_group("flim")
        g["counts"] = counts
        g["irf"] = irf
        g.attrs.update(bin_ps=cfg["bin_ps"], period_ns=cfg["period_ns"], pixel_um=pixel_um,
                       irf_source="simulated IRF")  # fmt: skip


def posterior_48(preset, seed, draws=None, merge=None, tune=1000, target_accept=None):
    """(c): simulate a 48 × 48 image, fit the default spatial posterior, evaluate."""
    import arviz as az

    from bayes_sc.inference.fit_flim import fit_flim
    from bayes_sc.modeling.flim_data import load_flim

    sim = preset["simulate"]
    cfg, px = sim["flim"], float(sim["flim"]["pixel_um"])
    rng = np.random.default_rng(seed)
    extent = np.array([48 * px, 48 * px])
    outline = crystal_outline((extent - px) / 2, 0.4 * extent, rng)
    mask = grid_mask(outline, (48, 48), (px, px))
    counts, irf, truth = simulate_flim(mask, px, cfg, sim["xray"], sim["law"], rng)
    with tempfile.TemporaryDirectory() as tmp:
        red = Path(tmp) / "reduced.h5"
        write_reduced(red, counts, irf, cfg, px)
        t0 = time.perf_counter()
        kw = {} if draws is None else {"draws": draws}  # None: fit_flim's default
        tree = fit_flim(red, preset, seed=seed, progress=False, tune=tune, merge=merge,
                        target_accept=target_accept, **kw)  # fmt: skip
        wall = time.perf_counter() - t0
        data = load_flim(red, merge=int(tree.attrs["merge"]))
        ml = fit_pixels(data)
        ls = fit_pixels(data, ml["global"], loss="ls")
    post = tree["posterior"].to_dataset()
    rows, cols = post["flim_row"].values, post["flim_col"].values
    want = truth["tau"][rows, cols]
    draws = post["tau"].values.reshape(-1, rows.size)
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    shift = post["irf_shift"].values.ravel()
    slo, shi = np.quantile(shift, [0.05, 0.95])
    names = ["tau", "irf_shift", "flim_background", "tau_mu", "tau_sd", "tau_rho"]
    ess, rhat = az.ess(post[names]), az.rhat(post[names])
    ss = tree["sample_stats"].to_dataset()

    def rmse(x):
        return float(np.sqrt(np.mean((x - want) ** 2)))

    # which variable mixes worst (one τ among ~1400 by chance, or a hyperparameter?)
    worst = max(names, key=lambda v: float(rhat[v].max()))

    return {
        "pixels": int(rows.size), "wall_s": wall, "merge": int(tree.attrs["merge"]),
        "tau_centred": int(tree.attrs["tau_centred"]),
        "coverage90": float(np.mean((want >= lo) & (want <= hi))),
        "rmse": rmse(draws.mean(0)), "rmse_ml": rmse(ml["tau"]), "rmse_ls": rmse(ls["tau"]),
        "irf_shift": [float(shift.mean()), float(shift.std())], "irf_shift_covered": bool(slo <= truth["irf_shift"] <= shi),
        "divergences": int(ss["diverging"].sum()),
        "max_rhat": float(max(float(rhat[v].max()) for v in names)),
        "min_ess_bulk": float(min(float(ess[v].min()) for v in names)),
        "min_bfmi": float(az.bfmi(tree)["energy"].min()), "draws": int(tree.attrs["draws"]),
        "mean_tree_depth": float(ss["tree_depth"].mean()), "tune": tune,
        "worst_rhat": worst, "target_accept": float(tree.attrs["target_accept"]),
        "tau_ess_bulk_q05_median": [float(np.quantile(ess["tau"], 0.05)), float(np.median(ess["tau"]))],
        "mean_leapfrog_steps": float(ss["n_steps"].mean()) if "n_steps" in ss else None, "n_rhat_above_1.01": int(sum(int((rhat[v] > 1.01).sum()) for v in names)),
        "n_parameters": int(sum(rhat[v].size for v in names)),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pixels", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-posterior", action="store_true")
    ap.add_argument(
        "--draws", type=int, default=None, help="(c): kept draws per chain (default: fit's)"
    )
    ap.add_argument("--target-accept", type=float, default=None,
                    help="(c): NUTS target acceptance (default: the preset's)")  # fmt: skip
    ap.add_argument("--tune", type=int, default=1000, help="(c): warm-up draws per chain")
    ap.add_argument("--merge", type=int, default=None, help="(c): native bins per merged bin")
    args = ap.parse_args()
    from bayes_sc.inference.sample import enable_parallel_chains

    enable_parallel_chains(2)
    preset = load_preset("cspbbr2cl")
    cfg = preset["simulate"]["flim"]
    irf, bin_ns, n = true_irf(cfg)
    period = cfg["period_ns"]
    rng = np.random.default_rng(args.seed)
    merge = 50  # 800 ps: the default for τ = 2 ns (min(800 ps, τ/2.5))
    data = synthetic_pixels(irf, bin_ns, n, period, args.pixels, merge, rng)
    pr = preset["priors"]
    prior = ([pr["tau"]["mu"], pr["flim_amplitude"]["mu"], np.log(pr["flim_background"]["sigma"])],
             [pr["tau"]["sigma"], pr["flim_amplitude"]["sigma"], 3.0])  # fmt: skip
    glob = {"tau_ns": TAU, "background": BG, "irf_shift_ps": SHIFT_PS}
    from bayes_sc.baseline.lm import LAST_TIMING

    ours = fit_pixels(data, glob, prior=prior)
    ours_pps = args.pixels / LAST_TIMING["run_s"]  # compiled once per image: not counted
    ours_pps_with_compile = args.pixels / (LAST_TIMING["run_s"] + LAST_TIMING["compile_s"])
    ls = fit_pixels(data, glob, loss="ls")
    tau_lib, lib_pps = flimlib_fit(data)
    f_cr = cramer_rao_f(irf, bin_ns, period)

    def f_value(t):
        t = t[np.isfinite(t)]
        return float(np.std(t) / TAU * np.sqrt(PHOTONS))

    out = {
        "photons": PHOTONS, "tau_ns": TAU, "pixels": args.pixels, "merge": merge,
        "F_cramer_rao": f_cr, "F_ours_map": f_value(ours["tau"]), "F_least_squares": f_value(ls["tau"]),
        "F_flimlib": f_value(tau_lib), "bias_ours_ns": float(np.mean(ours["tau"]) - TAU),
        "ratio_F_ours_to_cr": f_value(ours["tau"]) / f_cr,
        "ours_pixels_per_s": ours_pps, "ours_pixels_per_s_with_compile": ours_pps_with_compile,
        "flimlib_pixels_per_s": lib_pps, "ratio_speed": ours_pps / lib_pps,
    }  # fmt: skip
    print(
        f"(a) F at {PHOTONS:.0f} photons, τ = {TAU} ns ({args.pixels} pixels, merged {merge} bins):"
    )
    for k in ("F_cramer_rao", "F_ours_map", "F_least_squares", "F_flimlib"):
        print(f"    {k:18s} {out[k]:.3f}")
    print(f"    ours / Cramér–Rao  {out['ratio_F_ours_to_cr']:.3f}")
    print(
        f"(b) pixels/s: ours (MAP, JAX) {ours_pps:.0f} ({ours_pps_with_compile:.0f} counting its one compilation), flimlib LMA {lib_pps:.0f}, ratio {out['ratio_speed']:.2f}"
    )
    if not args.skip_posterior:
        post = posterior_48(
            preset, args.seed, args.draws, args.merge, args.tune, args.target_accept
        )
        out["posterior_48x48"] = post
        print(f"(c) 48 x 48 image, {post['pixels']} crystal pixels: {post['wall_s']:.0f} s, "
              f"divergences {post['divergences']}, max R-hat {post['max_rhat']:.3f}, "
              f"min ESS {post['min_ess_bulk']:.0f}, min BFMI {post['min_bfmi']:.2f}, tree depth "
              f"{post['mean_tree_depth']:.1f}; coverage {post['coverage90']:.3f}; RMSE "
              f"{post['rmse']:.4f} ns vs per-pixel ML {post['rmse_ml']:.4f}, LS {post['rmse_ls']:.4f}")  # fmt: skip
    out["machine"] = f"{platform.machine()}, {os.cpu_count()} cores"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
