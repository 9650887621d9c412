"""The paper's pipeline as a baseline: it recovers the strong SAXS lattice on simulated data."""

import h5py
import numpy as np

from bayes_sc.baseline import baseline_xray
from bayes_sc.modeling.xray_data import load_xray
from bayes_sc.presets import load_preset


def test_baseline_recovers_the_saxs_lattice(small_sim, small_reduced):
    data = load_xray(small_reduced)
    maps = baseline_xray(data, load_preset("cspbbr2cl"))
    mask = data.crystal_mask
    with h5py.File(small_sim.parent / "truth.h5") as t:
        truth = {k: t[f"xray/{k}"][()] for k in ("a_mean", "a_ratio", "gamma", "phi", "psi")}
        a_al = t["xray/a_AL"][()]
    assert np.isfinite(maps["a_mean"][mask]).all()
    # SAXS peaks hold ~10^4 counts: per-pixel fits are precise to a few 0.01 nm
    assert np.sqrt(np.mean((maps["a_mean"] - truth["a_mean"])[mask] ** 2)) < 0.05
    assert np.sqrt(np.mean((maps["a_ratio"] - truth["a_ratio"])[mask] ** 2)) < 0.01
    assert np.sqrt(np.mean((maps["gamma"] - truth["gamma"])[mask] ** 2)) < 0.5
    assert np.sqrt(np.mean((maps["phi"] - truth["phi"])[mask] ** 2)) < 0.5
    # WAXS: weaker and broad; ψ still within a few degrees, a_AL from the ring radii
    ok = np.isfinite(maps["psi"]) & mask
    assert ok.sum() >= 0.8 * mask.sum()
    assert np.sqrt(np.mean((maps["psi"] - truth["psi"])[ok] ** 2)) < 3.0
    assert abs(maps["a_AL"] - a_al) < 0.005
    assert np.isnan(maps["a_mean"][~mask]).all()


def test_peak_jacobian_matches_finite_differences(rng):
    """The least-squares fits' analytic Jacobian equals scipy's 3-point finite differences."""
    from scipy.optimize._numdiff import approx_derivative

    from bayes_sc.baseline.peakfit import binned_gaussian, binned_gaussian_jacobian

    n = 300
    bins = (rng.uniform(9.0, 11.0, n), rng.uniform(-190.0, -130.0, n), rng.uniform(0.5, 1.0, n),
            rng.uniform(0.0, 0.01, n), rng.uniform(0.0, 2.0, n))  # fmt: skip
    p = np.array([10.1, 178.0, np.log(0.3), np.log(8.0), np.log(5000.0), 0.7])  # across ±180°
    jac = binned_gaussian_jacobian(p, *bins)
    num = approx_derivative(lambda x: binned_gaussian(x, *bins), p, method="3-point")
    assert jac.shape == (n, 6)
    np.testing.assert_allclose(jac, num, atol=1e-6 * np.abs(jac).max())
