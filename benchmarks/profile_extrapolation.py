"""How far the regression's spline profiles miss the simulator's true profiles at FLIM pixels.

The regression reads each covariate at an optical pixel's edge distance from a cubic B-spline
fitted to the X-ray pixels (``bayes_sc.regress.profiles``). Optical pixels nearer the edge than
any X-ray pixel (their grids differ: SPEC §5's edge distance starts at one step, 0.5 µm
against 0.2 µm) read the spline's end piece. This script fits the spline to the simulator's
*noise-free* profiles at the X-ray pixels of a few synthetic outlines, as
``bayes_sc.simulate.posteriors`` draws them, and reports the error at the FLIM pixels, per
covariate and in τ's law [ps], split into extrapolated pixels and those inside the X-ray
range, beside τ's noise floor for one crystal's mean, and the error over the sd the profiles'
uncertain continuation gives it there (``bayes_sc.physics.spline.continuation_sd``; 1 when
calibrated).

    python benchmarks/profile_extrapolation.py [--scales 0.5,1.5,5.0] [--outlines 3]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from bayes_sc.physics import edge_distance_grid
from bayes_sc.physics.spline import continuation_sd, spline_basis
from bayes_sc.presets import load_preset, load_regression_settings
from bayes_sc.simulate.fields import crystal_outline, grid_mask, structural_profiles
from bayes_sc.simulate.optics import law_coefficients
from bayes_sc.simulate.posteriors import TAU_SD_NS

NAMES = ("a_mean", "delta_psi", "g_q")


def _edges(rng, extent, step):
    outline = crystal_outline((extent - step) / 2, 0.36 * extent, rng)
    shape = (math.ceil(extent[1] / step), math.ceil(extent[0] / step))
    mask = grid_mask(outline, shape, (step, step))
    return edge_distance_grid(mask, (step, step))[mask]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", help="profile scales [um] of a_mean,delta_psi,g_q (default: the "
                    "preset's)")  # fmt: skip
    ap.add_argument("--outlines", type=int, default=3)
    ap.add_argument("--scan", type=int, default=25, help="X-ray scan points per side")
    args = ap.parse_args(argv)
    sim = load_preset("cspbbr2cl")["simulate"]
    xcfg = dict(sim["xray"])
    if args.scales:
        xcfg["profile_scale_um"] = dict(zip(NAMES, map(float, args.scales.split(",")), strict=True))
    settings = load_regression_settings()["profiles"]
    knots = int(settings["max_interior_knots"]["value"])
    beta = law_coefficients(sim["law"])["tau"]
    step, px = float(xcfg["step_um"]), float(sim["flim"]["pixel_um"])
    extent = np.array([args.scan * step, args.scan * step])
    sigma_ns = math.hypot(TAU_SD_NS, float(sim["law"]["tau_sigma_ns"]))
    for seed in range(args.outlines):
        rng = np.random.default_rng(seed)
        edge, f_edge = _edges(rng, extent, step), _edges(rng, extent, px)
        basis = spline_basis(edge, knots)
        B, Bf = basis(edge), basis(f_edge)
        true_x, true_f = structural_profiles(edge, xcfg), structural_profiles(f_edge, xcfg)
        outside = f_edge < edge.min() - 1e-9
        print(f"outline {seed}: X-ray edges {edge.min():.2f}-{edge.max():.2f} um ({edge.size}), "
              f"FLIM {f_edge.min():.2f}-{f_edge.max():.2f} um ({f_edge.size}, "
              f"{outside.sum()} below the X-ray range)")  # fmt: skip
        tau_err, tau_var = np.zeros(f_edge.size), np.zeros(f_edge.size)
        beyond = np.maximum(basis.lo - f_edge, 0.0)
        rings = int(settings["continuation_holdout_rings"]["value"])
        for c in NAMES:
            w = np.linalg.lstsq(B, true_x[c], rcond=None)[0]
            err = Bf @ w - true_f[c]
            tau_err += beta[c] * err
            tau_var += (beta[c] * continuation_sd(true_x[c], edge, knots, rings)[0] * beyond) ** 2
            print(f"  {c:<10} error rms {np.sqrt(np.mean(err**2)):.3g}, max {np.abs(err).max():.3g}"
                  f" (contrast {np.ptp(true_f[c]):.3g})")  # fmt: skip
        rms = [1000 * np.sqrt(np.mean(tau_err[s] ** 2)) for s in (outside, ~outside)]
        floor_ps = 1000 * sigma_ns / np.sqrt(f_edge.size)
        print(f"  tau's law: {rms[0]:.2f} ps rms at extrapolated pixels, {rms[1]:.2f} ps inside; "
              f"noise floor of the crystal's mean {floor_ps:.2f} ps")  # fmt: skip
        z = tau_err[outside] / np.sqrt(tau_var[outside])
        print(f"  error / continuation sd at extrapolated pixels: rms {np.sqrt(np.mean(z**2)):.2f}"
              f", max |z| {np.abs(z).max():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
