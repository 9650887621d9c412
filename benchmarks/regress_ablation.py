"""Which part of the profiles' covariance sets the regression's interval width? (issue 7)

One-crystal replicates as in ``regress_coverage.py`` (calibrated synthetic posteriors), with
the profiles' coefficient covariance C cut down before ``regress`` sees it:

- ``full``: the model (draws' spread + s² (BᵀB)⁻¹ + continuation);
- ``nocont``: no continuation beyond the X-ray edge range;
- ``nos2``: no sampling-error term s² (BᵀB)⁻¹ (draws' spread + continuation);
- ``plugin``: C = 0, the profiles' means plugged in.

Printed per β: 90 % coverage, rms error / mean posterior sd, mean error / mean sd, mean sd, and
the posterior contraction of the standardised slope (near 1: the data, not the prior, set it).

    python benchmarks/regress_ablation.py --mode plugin --replicates 20 [--settings FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

import bayes_sc.regress as regress_module
from bayes_sc.presets import load_preset
from bayes_sc.regress.model import COVS
from bayes_sc.regress.profiles import estimate_profile
from bayes_sc.simulate.optics import law_coefficients
from bayes_sc.simulate.posteriors import synthetic_crystal


def ablated(mode: str):
    """``estimate_profile`` with the covariance parts that ``mode`` drops set to ~0."""

    def estimate(*args, **kwargs):
        p = estimate_profile(*args, **kwargs)
        k = p.cov.shape[0] - 2  # the spline's coefficients; then the two continuations
        if mode == "plugin":
            return dataclasses.replace(p, cov=1e-14 * np.eye(k + 2))
        cov = p.cov.copy()
        if mode == "nocont":
            cov[k:, k:] = 1e-14 * np.eye(2)
        if mode == "nos2":
            cov[:k, :k] = p.draw_cov[:k, :k]
        return dataclasses.replace(p, cov=cov)

    return estimate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("full", "nocont", "nos2", "plugin"), default="full")
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--scales", default="0.5,1.5,5.0", help="profile scales [um] of a_mean,"
                    "delta_psi,g_q")  # fmt: skip
    ap.add_argument("--seed", type=int, default=100)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--settings", type=Path, help="regression settings (e.g. other knots)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    regress_module.estimate_profile = ablated(args.mode)  # what crystal_profiles calls
    preset = load_preset("cspbbr2cl")
    scales = dict(zip(COVS, (float(v) for v in args.scales.split(",")), strict=True))
    xray = dict(preset["simulate"]["xray"], profile_scale_um=scales)
    preset = preset | {"simulate": preset["simulate"] | {"xray": xray}}
    truth = law_coefficients(preset["simulate"]["law"])
    rows: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.replicates):
            rng = np.random.default_rng(args.seed + rep)
            p = synthetic_crystal(Path(tmp) / f"r{rep}", preset, rng)
            out = Path(tmp) / f"r{rep}.nc"
            _, summary = regress_module.regress(
                [p["xray"], p["flim"], p["pl"]], out, seed=rep, draws=args.draws,
                progress=False, settings_path=args.settings,
            )  # fmt: skip
            tree = xr.open_datatree(out)
            collinearity = json.loads(tree.attrs["collinearity"])
            for key, b in summary["beta"].items():
                r, c = key.split("/")
                t = truth[r][c]
                contr = collinearity[r]["beta_std_contraction"][c]
                row = (b["mean"] - t, b["sd"], b["lower"] <= t <= b["upper"], contr)
                rows.setdefault(key, []).append(row)
            print(f"replicate {rep} done", flush=True)
    print(f"\nmode {args.mode}, scales {args.scales}, {args.replicates} replicates")
    print(f"{'beta':<22} {'coverage':>9} {'rms err/sd':>11} {'mean err/sd':>12} {'mean sd':>10} "
          f"{'contraction':>12}")  # fmt: skip
    for key, v in rows.items():
        v = np.array(v, dtype=float)
        sd = v[:, 1].mean()
        rms = np.sqrt(np.mean(v[:, 0] ** 2)) / sd
        print(f"{key:<22} {v[:, 2].mean():>9.2f} {rms:>11.2f} {v[:, 0].mean() / sd:>+12.2f} "
              f"{sd:>10.4g} {v[:, 3].mean():>12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
