"""Where the pooled slopes' common bias comes from (issue 7; docs/benchmarks.md).

On the crystals ``regress_coverage.py --pool 3 --scales 0.5,1.5,5.0`` draws (same seeds), this
fits the pooled law (common slopes, one intercept per crystal) by weighted least squares and
by maximum likelihood, with no MCMC, and reports each slope's mean error over ``--seeds`` in
units of the pooled posterior sd measured by ``regress_coverage.py`` (its 90 % widths / 3.29):

1. plug-in least squares on the covariate profiles, with the responses' noise and the X-ray
   fields' noise switched on or off one at a time (``clean``: the law's noise-free response;
   ``exact``: the spline fitted to the noise-free field, so that only the named covariates'
   profiles carry the X-ray noise);
2. maximum likelihood with the profiles' errors integrated out (regress's likelihood, with
   its det(I + M S)^(-1/2) factor) and profiled out (that factor dropped), σ at the law's;
3. with ``--calibrate F1,F2,...``, regression calibration: the profiles' coefficients given a
   structural prior before the fits (:func:`calibrated`), plug-in and integrated.

    python benchmarks/regress_bias.py [--seeds 100:130] [--calibrate 0.001,0.05]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
from scipy.linalg import block_diag
from scipy.optimize import minimize

from bayes_sc.presets import load_preset
from bayes_sc.regress import _value, crystal_profiles, load_settings, read_posteriors, response_data
from bayes_sc.regress.eiv import column_space, spline_normal_logp
from bayes_sc.regress.model import COVS
from bayes_sc.regress.profiles import estimate_profile
from bayes_sc.simulate.fields import structural_profiles
from bayes_sc.simulate.optics import law_response
from bayes_sc.simulate.posteriors import synthetic_crystal

SCALES = {"a_mean": 0.5, "delta_psi": 1.5, "g_q": 5.0}
# pooled posterior sd of each slope: mean 90 % width / 3.29 (regress_coverage --pool 3 at 8
# interior knots, docs/regress_pool3_scales_0.5_1.5_5_knots8_seed100.json; session 23's table
# in docs/benchmarks.md used the 2-knot widths 3.31, 0.690, 10.6 and 0.057, 0.0123, 0.195)
POSTERIOR_SD = {"blueshift": np.array([3.00, 0.532, 8.21]) / 3.29,
                "tau": np.array([0.0542, 0.00952, 0.156]) / 3.29}  # fmt: skip
CASES = [("clean", ()), ("noisy", COVS), ("clean", COVS), ("clean", ("a_mean",)),
         ("clean", ("delta_psi",)), ("clean", ("g_q",)), ("noisy", ())]  # fmt: skip


def _compiled_logp():
    """regress's likelihood (:func:`bayes_sc.regress.eiv.spline_normal_logp`), compiled once."""
    import pytensor
    import pytensor.tensor as pt

    resid, var, B, S = pt.dvector(), pt.dvector(), pt.dmatrix(), pt.dmatrix()
    return pytensor.function([resid, var, B, S], spline_normal_logp(resid, var, B, S))


def calibrated(profiles: dict, floor: float):
    """Regression calibration of one crystal's profiles: (means {covariate: (K + 2,)}, joint
    covariance (C, C, K + 2, K + 2)).

    Structural prior on the spline coefficients: the C-vectors w_i (i = 1..K, one per basis
    function) i.i.d. N(μ, Σ), μ and Σ by moments from the X-ray means m_i (their covariance
    less the mean error variance; eigenvalues floored at ``floor`` × the largest, since a
    dozen coefficients pin Σ's smallest, the collinear direction's, poorly). The coefficients
    are then N(m', C') given the X-ray posterior N(m, E): m' shrinks the part of m the prior
    finds unlikely (the noise orthogonal to the covariates' common trend), and C' couples the
    covariates. The continuations keep their own N(0, ·).
    """
    k = profiles[COVS[0]].basis.size
    m = np.stack([profiles[c].mean[:k] for c in COVS], axis=1)  # (K, C)
    err = [profiles[c].cov[:k, :k] for c in COVS]
    sigma = np.cov(m, rowvar=False) - np.diag([np.diag(e).mean() for e in err])
    val, vec = np.linalg.eigh(sigma)
    sigma = (vec * np.maximum(val, floor * val.max())) @ vec.T
    lam = np.kron(sigma, np.eye(k))  # covariate-major, like m.T.ravel()
    gain = lam @ np.linalg.inv(lam + block_diag(*err))
    mu = np.repeat(m.mean(axis=0), k)
    m_new = (mu + gain @ (m.T.ravel() - mu)).reshape(len(COVS), k)
    c_new = lam - gain @ lam
    cov = np.zeros((len(COVS), len(COVS), k + 2, k + 2))
    for a, c in enumerate(COVS):
        for b in range(len(COVS)):
            cov[a, b, :k, :k] = 0.5 * (c_new + c_new.T)[a * k : (a + 1) * k, b * k : (b + 1) * k]
        cov[a, a, k:, k:] = profiles[c].cov[k:, k:]
    means = {c: np.concatenate([m_new[a], [0.0, 0.0]]) for a, c in enumerate(COVS)}
    return means, cov


def _joint_segments(r, profiles, calib=None):
    """Per crystal: (k, slice, reduced design, (C, C, r, r) joint covariance), and the
    covariates at the pixels (n, C); ``calib``: per crystal, :func:`calibrated`'s output."""
    x, out = np.empty((r.y.size, len(COVS))), []
    for k, B in enumerate(r.basis):
        sel = np.flatnonzero(r.crystal == k)
        seg = slice(int(sel[0]), int(sel[-1]) + 1)
        if calib is None:
            means = {c: profiles[k][c].mean for c in COVS}
            cov = np.zeros((len(COVS), len(COVS)) + profiles[k][COVS[0]].cov.shape)
            for a, c in enumerate(COVS):
                cov[a, a] = profiles[k][c].cov
        else:
            means, cov = calib[k]
        x[seg] = np.column_stack([B @ means[c] for c in COVS])
        b_red, blocks = column_space(B, list(cov.reshape((-1,) + cov.shape[2:])))
        out.append((k, seg, b_red, np.reshape(blocks, cov.shape[:2] + (b_red.shape[1],) * 2)))
    return out, x


def _eiv_nll(beta, alpha, r, segs, x, var, profiled, logp):
    """−log-likelihood of common slopes ``beta`` and per-crystal ``alpha``; ``profiled``: less
    the Occam factor det(I + M S)^(−½) (the profiles maximised over, not integrated out)."""
    total = 0.0
    for k, seg, B, covs in segs:
        S = np.einsum("a,b,abij->ij", beta, beta, covs)
        total -= logp(r.y[seg] - alpha[k] - x[seg] @ beta, var[seg], B, S)
        if profiled:
            M = B.T @ (B / var[seg][:, None])
            total -= 0.5 * np.linalg.slogdet(np.eye(len(S)) + M @ S)[1]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="100:130")
    ap.add_argument("--calibrate", default="", help="floors of the structural prior's "
                    "eigenvalues (comma-separated): add regression-calibrated fits")  # fmt: skip
    ap.add_argument("--settings", type=Path, help="regression settings overriding "
                    "models/regression.toml (e.g. extrapolate_um, max_interior_knots)")  # fmt: skip
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    lo, hi = (int(v) for v in args.seeds.split(":"))
    floors = [float(f) for f in args.calibrate.split(",") if f]
    preset = load_preset("cspbbr2cl")
    xcfg = preset["simulate"]["xray"] | {"profile_scale_um": SCALES}
    preset = preset | {"simulate": preset["simulate"] | {"xray": xcfg}}
    law, settings = preset["simulate"]["law"], load_settings(args.settings)
    knots = int(_value(settings["profiles"]["max_interior_knots"]))
    sigma = {"tau": law["tau_sigma_ns"], "blueshift": law["blueshift_sigma_mev"]}
    errors, logp = {}, _compiled_logp()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(lo, hi):
            rng = np.random.default_rng(seed)
            cr = [synthetic_crystal(Path(tmp) / f"{seed}_{k}", preset, rng, name=f"SC{k}")
                  for k in range(3)]  # fmt: skip
            crystals = read_posteriors([p for c in cr for p in (c["xray"], c["flim"], c["pl"])])
            profiles = [crystal_profiles(c, settings) for c in crystals]
            exact = []  # per crystal: splines fitted to the noise-free fields
            for cry in crystals:
                true = structural_profiles(cry.xray_edge_um, xcfg)
                exact.append({c: estimate_profile(c, "", np.tile(true[c], (3, 1))
                                                  + 1e-9 * rng.standard_normal((3, true[c].size)),
                                                  cry.xray_edge_um, knots)
                              for c in COVS})  # fmt: skip
            calibs = {f: [calibrated(p, f) for p in profiles] for f in floors}
            for name in ("tau", "blueshift"):
                r = response_data(name, crystals, profiles, settings)
                t = np.array([cr[0]["beta"][name][c] for c in COVS])
                x_noisy = r.mean_covariates(profiles)
                x_exact = r.mean_covariates(exact)
                _, y_clean = law_response(r.edge_um, xcfg, law, name, rng)
                dummies = np.column_stack([(r.crystal == k) for k in range(3)]).astype(float)
                w = 1.0 / np.sqrt(r.se**2 + sigma[name] ** 2)
                for ys, noisy in CASES:
                    x = np.where(np.isin(COVS, noisy)[None, :], x_noisy, x_exact)
                    D = np.column_stack([x, dummies]) * w[:, None]
                    y = r.y if ys == "noisy" else y_clean
                    b = np.linalg.lstsq(D, y * w, rcond=None)[0][:3]
                    key = f"{name}: LS, y {ys}, X-ray noise in {','.join(noisy) or 'none'}"
                    errors.setdefault(key, []).append((b - t) / POSTERIOR_SD[name])
                var = r.se**2 + sigma[name] ** 2
                variants = [("", False, None), ("", True, None)]
                variants += [(f", calibrated (floor {f:g})", False, c) for f, c in calibs.items()]
                for label, profiled, calib in variants:
                    segs, x = _joint_segments(r, profiles, calib)
                    start = np.linalg.lstsq(np.column_stack([x, dummies]), r.y, rcond=None)[0]
                    if calib is not None:
                        key = f"{name}: LS{label}"
                        errors.setdefault(key, []).append((start[:3] - t) / POSTERIOR_SD[name])
                    fit = minimize(
                        lambda p, *a: _eiv_nll(p[:3], p[3:], *a), start, method="BFGS",
                        args=(r, segs, x, var, profiled, logp),
                    )  # fmt: skip
                    how = "profiled" if profiled else "integrated"
                    key = f"{name}: ML, profiles {how}{label}"
                    errors.setdefault(key, []).append((fit.x[:3] - t) / POSTERIOR_SD[name])
            print(f"seed {seed} done", flush=True)
    print(f"\nmean error / pooled posterior sd over {hi - lo} seeds (± its standard error), "
          f"slopes on {', '.join(COVS)}")  # fmt: skip
    for key, e in errors.items():
        e = np.array(e)
        se = e.std(axis=0) / np.sqrt(len(e))
        print(
            f"{key:<66}"
            + "".join(f" {m:+6.2f}±{s:.2f}" for m, s in zip(e.mean(0), se, strict=True))
            + "   rms "
            + " ".join(f"{v:.2f}" for v in np.sqrt((e**2).mean(axis=0)))
        )


if __name__ == "__main__":
    main()
