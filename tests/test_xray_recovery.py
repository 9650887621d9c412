"""Seeded recovery: the fast (summary) X-ray model on a small simulated crop finds the truth."""

import h5py
import numpy as np

from bayes_sc.inference.fit import fit_xray
from bayes_sc.presets import load_preset

FIELDS = ("a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "I_AL")


def test_summary_model_recovers_the_simulated_fields(small_reduced, small_sim):
    tree = fit_xray(small_reduced, load_preset("cspbbr2cl"), crop=(slice(1, 4), slice(1, 4)),
                    chains=2, draws=200, tune=600, seed=11, progress=False)  # fmt: skip
    post = tree.posterior
    rows, cols = post["xray_row"].values, post["xray_col"].values
    with h5py.File(small_sim.parent / "truth.h5") as f:
        truth = {k: f["xray"][k][()] for k in (*FIELDS, "L_nc", "a_AL")}
    # On a 9-pixel crop the BYM2 hyperparameters of ten fields are barely identified, and a
    # rare divergence in their tails comes and goes with the CPU's floating-point details
    # (XLA code for AVX-512 vs AVX2: 0 on the AMD VM, 1 of 400 on an Intel one, same seed and
    # packages). A real geometry problem gives far more; full scans give 0 (benchmarks).
    assert int(tree.sample_stats["diverging"].sum()) <= 2
    z_all = []
    for name in FIELDS:
        draws = post[name].values.reshape(-1, rows.size)
        want = truth[name][rows, cols]
        z = (draws.mean(0) - want) / draws.std(0)
        z_all.append(z)
        # every pixel's truth within its 99.9 % interval (|z| < 3.3)
        assert np.all(np.abs(z) < 3.3), (name, z)
    z_all = np.concatenate(z_all)
    assert abs(z_all.mean()) < 4 / np.sqrt(z_all.size) + 0.15, z_all.mean()
    d = post["a_AL"].values.ravel()
    assert abs(d.mean() - truth["a_AL"]) < 3.3 * d.std(), (d.mean(), d.std(), truth["a_AL"])
    # Not checked here: L_nc and g_q. On 9 edge pixels the Williamson-Hall split between
    # size and strain rests on a ~1 σ per-pixel trend of width with q; this crop gives
    # L_nc = 6.56 ± 0.07 nm (truth 6.8) with g_q near 0.6 %. Their recovery is measured on
    # paper-scale scans (benchmarks/fit_xray.py, docs/benchmarks.md).
