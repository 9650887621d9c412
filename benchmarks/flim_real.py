# ruff: noqa: E501  (a benchmark script: long report lines read better unwrapped)
"""Real FLIM data end to end: a PicoQuant image PTU with no IRF → spatial τ posterior → figure.

Writes a manifest for ``../shared/data/ptu/hazelnut_z1.ptu`` (PicoHarp, 256 × 256, 97 ps bins,
~10 photons per pixel), fits ``--model flim`` with k × k binning and the modelled IRF, and saves
``docs/figures/flim_<name>_tau.png``: posterior mean τ, 90 % interval width, and the per-pixel
Poisson ML map beside them. Prints diagnostics; last line JSON.

    python benchmarks/flim_real.py [--ptu PATH] [--bin 8] [--draws 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ptu", type=Path, default=ROOT.parent / "shared/data/ptu/hazelnut_z1.ptu")
    ap.add_argument("--bin", type=int, default=8)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--tune", type=int, default=1000)
    args = ap.parse_args()
    from bayes_sc.inference.fit_flim import fit_flim
    from bayes_sc.inference.sample import enable_parallel_chains

    enable_parallel_chains(2)
    from bayes_sc.baseline.flim import fit_pixels
    from bayes_sc.modeling.flim_data import load_flim
    from bayes_sc.presets import load_preset
    from bayes_sc.reduce import reduce_dataset

    preset = load_preset("cspbbr2cl")
    with tempfile.TemporaryDirectory() as tmp:
        man = Path(tmp) / "image.toml"
        man.write_text(
            f'name = "{args.ptu.stem}"\nmaterial = "cspbbr2cl"\n[flim]\nptu = "{args.ptu.resolve()}"\n'
        )
        red = Path(tmp) / "reduced.h5"
        reduce_dataset(man, red, progress=False)
        t0 = time.perf_counter()
        tree = fit_flim(
            red, preset, bin_pixels=args.bin, draws=args.draws, tune=args.tune, progress=False
        )
        wall = time.perf_counter() - t0
        data = load_flim(red, bin_pixels=args.bin, merge=int(tree.attrs["merge"]))
        ml = fit_pixels(data)
    post = tree["posterior"].to_dataset()
    names = [
        "tau",
        "irf_shift",
        "irf_fwhm",
        "irf_tail",
        "flim_background",
        "tau_mu",
        "tau_sd",
        "tau_rho",
    ]
    rhat, ess = az.rhat(post[names]), az.ess(post[names])
    ss = tree["sample_stats"].to_dataset()
    draws = post["tau"].values.reshape(-1, data.graph.n)
    mean = data.graph.to_grid(draws.mean(0))
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    width = data.graph.to_grid(hi - lo)
    ml_map = data.graph.to_grid(np.where(ml["ok"], ml["tau"], np.nan))
    size = data.pixel_um
    ext = [0, mean.shape[1] * size, mean.shape[0] * size, 0]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    # one colour scale for both τ maps (2-98 % of their values together), so that they compare
    vmin, vmax = np.nanpercentile(np.concatenate([mean.ravel(), ml_map.ravel()]), [2, 98])
    for ax, img, title, cmap, lims in [
        (axes[0], mean, "posterior mean τ [ns]", "viridis", (vmin, vmax)),
        (axes[1], width, "90 % interval width of τ [ns]", "magma", (None, None)),
        (axes[2], ml_map, "per-pixel Poisson ML τ [ns]", "viridis", (vmin, vmax)),
    ]:
        im = ax.imshow(
            img, extent=ext if data.pixel_um_known else None, cmap=cmap, vmin=lims[0], vmax=lims[1]
        )
        ax.set_title(title)
        unit = "µm" if data.pixel_um_known else f"binned pixels ({args.bin}×{args.bin})"
        ax.set_xlabel(f"x [{unit}]")
        ax.set_ylabel(f"y [{unit}]")
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle(
        f"{args.ptu.name}: {data.graph.n} pixels ({args.bin}×{args.bin} binned), modelled IRF"
    )
    figdir = ROOT / "docs/figures"
    figdir.mkdir(parents=True, exist_ok=True)
    figpath = figdir / f"flim_{args.ptu.stem}_tau.png"
    fig.savefig(figpath, dpi=110)
    out = {
        "file": args.ptu.name, "pixels": data.graph.n, "bin": args.bin, "merge": data.merge,
        "photons_median": float(np.median(data.counts.sum(1))), "wall_s": wall,
        "tau_median_ns": float(np.median(draws.mean(0))),
        "tau_p5_p95_ns": [float(v) for v in np.percentile(draws.mean(0), [5, 95])],
        "median_interval_width_ns": float(np.median(hi - lo)),
        "ml_tau_median_ns": float(np.nanmedian(ml["tau"])),
        "irf_centre_ps": float(post["irf_shift"].mean()), "irf_fwhm_ps": float(post["irf_fwhm"].mean()),
        "divergences": int(ss["diverging"].sum()),
        "max_rhat": float(max(float(rhat[v].max()) for v in names)),
        "min_ess_bulk": float(min(float(ess[v].min()) for v in names)),
        "min_bfmi": float(az.bfmi(tree)["energy"].min()), "tau_centred": int(tree.attrs["tau_centred"]),
        "figure": str(figpath.relative_to(ROOT)),
    }  # fmt: skip
    for k, v in out.items():
        print(f"{k:26s} {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
