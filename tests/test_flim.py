"""FLIM: merged-bin forward kernel, parametric IRF, data loading, baselines, model structure."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from scipy.stats import exponnorm

from bayes_sc.errors import InputError
from bayes_sc.physics.flim import emg_irf, flim_expected_counts, gaussian_irf
from bayes_sc.physics.flim_binned import flim_expected_merged, merge_bins, merged_widths


def _irf(n, bin_ns, rng):
    return gaussian_irf(n, bin_ns, 0.3 * n * bin_ns, 0.2) + 1e-4 * rng.random(n)


# --- physics: the O(N) merged kernel equals the N x N reference --------------------------------
@pytest.mark.parametrize(
    "n, bin_ns, period", [(200, 0.05, 10.0), (132, 0.097, 12.82), (37, 0.1, 3.75)]
)
@pytest.mark.parametrize("merge", [1, 5, 7, 25])
@pytest.mark.parametrize("shift_ps", [0.0, 85.3, -463.2, 1234.5])
def test_merged_kernel_equals_reference(rng, n, bin_ns, period, merge, shift_ps):
    irf = _irf(n, bin_ns, rng)
    tau = np.array([0.01, 0.3, 2.0, 7.5, 100.0])  # far below and far above the bin width
    amp = np.array([100.0, 2000.0, 1e4, 50.0, 3.0])
    ref = merge_bins(flim_expected_counts(irf, bin_ns, period, tau, amp, shift_ps, 0.02), merge)
    got = flim_expected_merged(irf, bin_ns, period, tau, amp, shift_ps, 0.02, merge)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)
    if np.isclose(period, n * bin_ns):  # whole bins fill the period: every decay photon lands
        assert got.sum(-1) == pytest.approx(amp + 0.02 * n, rel=1e-9)


def test_merged_kernel_jax_pytensor_values_and_gradients(rng):
    import jax
    import jax.numpy as jnp
    import pytensor
    import pytensor.tensor as pt

    jax.config.update("jax_enable_x64", True)
    irf = _irf(150, 0.08, rng)
    tau = np.array([0.4, 1.7, 3.0])
    ref = flim_expected_merged(irf, 0.08, 12.0, tau, 500.0, 210.0, 0.1, 6)
    got = flim_expected_merged(irf, 0.08, 12.0, jnp.asarray(tau), 500.0, jnp.asarray(210.0), 0.1, 6)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12)
    t, s = pt.dvector("t"), pt.dscalar("s")
    y = rng.poisson(ref).astype(float)
    mu = flim_expected_merged(irf, 0.08, 12.0, t, 500.0, s, 0.1, 6)
    ll = pt.sum(y * pt.log(mu) - mu)
    fn = pytensor.function([t, s], [mu, *pt.grad(ll, [t, s])])
    mu_v, g_t, g_s = fn(tau, 210.0)
    np.testing.assert_allclose(mu_v, ref, rtol=1e-12)

    def ll_np(tv, sv):
        m = flim_expected_merged(irf, 0.08, 12.0, tv, 500.0, sv, 0.1, 6)
        return float(np.sum(y * np.log(m) - m))

    eps = 1e-6
    fd_t = [
        (ll_np(tau + eps * e, 210.0) - ll_np(tau - eps * e, 210.0)) / (2 * eps) for e in np.eye(3)
    ]
    fd_s = (ll_np(tau, 210.0 + 1e-3) - ll_np(tau, 210.0 - 1e-3)) / 2e-3
    np.testing.assert_allclose(g_t, fd_t, rtol=1e-5, atol=1e-6)
    assert g_s == pytest.approx(fd_s, rel=1e-4, abs=1e-6)


def test_merge_helpers():
    x = np.arange(2 * 11).reshape(2, 11)
    m = merge_bins(x, 4)
    np.testing.assert_array_equal(m, [[6, 22, 27], [50, 66, 60]])
    np.testing.assert_array_equal(merged_widths(11, 4), [4, 4, 3])


@pytest.mark.parametrize(
    "centre, fwhm, tail", [(2.0, 0.18, 0.05), (1.0, 0.1, 0.001), (3.0, 0.3, 1.0), (0.05, 0.2, 0.2)]
)
def test_emg_irf_matches_scipy_exponnorm(centre, fwhm, tail):
    n, d = 400, 0.016
    got = emg_irf(n, d, centre, fwhm, tail)
    s = fwhm / (2 * np.sqrt(2 * np.log(2)))
    e = np.arange(n + 1) * d
    ref = sum(
        np.diff(exponnorm.cdf(e - w * n * d, tail / s, loc=centre, scale=s)) for w in (-1, 0, 1)
    )
    np.testing.assert_allclose(got, ref / ref.sum(), atol=1e-13)


def test_emg_irf_gradients_finite_far_from_the_pulse():
    import pytensor
    import pytensor.tensor as pt

    c, f, t = pt.dscalars("c", "f", "t")
    g = emg_irf(3125, 0.016, c, f, t)
    fn = pytensor.function([c, f, t], pt.grad(pt.sum(g * np.linspace(0, 1, 3125)), [c, f, t]))
    for args in [(2.0, 0.18, 0.05), (0.01, 0.05, 1e-4), (49.0, 0.4, 3.0)]:
        assert np.all(np.isfinite(fn(*args)))


# --- data, crystal mask, errors ----------------------------------------------------------------
def test_load_flim_finds_the_simulated_crystal(small_reduced, small_sim):
    from bayes_sc.modeling.flim_data import load_flim

    data = load_flim(small_reduced, merge=25)
    with h5py.File(small_sim.parent / "truth.h5") as f:
        truth = f["flim"]["mask"][()]
    np.testing.assert_array_equal(data.crystal_mask, truth)
    with h5py.File(small_reduced) as f:
        native = f["flim"]["counts"][()]
    np.testing.assert_array_equal(data.counts.sum(1), native[truth].sum(1))  # merging keeps photons
    assert data.counts.shape == (truth.sum(), 125)
    coords = data.coords()
    assert set(coords) == {"flim_row", "flim_col", "flim_x_um", "flim_y_um", "flim_edge_um"}
    assert np.all(coords["flim_edge_um"] > 0)
    binned = load_flim(small_reduced, bin_pixels=2, merge=25)
    assert binned.photons.shape == (native.shape[0] // 2, native.shape[1] // 2)
    assert binned.pixel_um == pytest.approx(2 * data.pixel_um)


def test_load_flim_bad_input(small_reduced, tmp_path):
    from bayes_sc.modeling.flim_data import load_flim

    with pytest.raises(InputError, match="crystal mask has shape"):
        load_flim(small_reduced, crystal_mask=np.ones((2, 2), bool))
    bad = tmp_path / "noflim.h5"
    with h5py.File(bad, "w") as f:
        f.create_group("xray")
    with pytest.raises(InputError, match="holds no FLIM data"):
        load_flim(bad)
    for name, edit in {
        "zero.h5": lambda g: g["counts"].__setitem__(Ellipsis, 0),
        "irf.h5": lambda g: (g.__delitem__("irf"), g.__setitem__("irf", np.ones(7))),
    }.items():
        path = tmp_path / name
        path.write_bytes(small_reduced.read_bytes())
        with h5py.File(path, "r+") as f:
            edit(f["flim"])
        with pytest.raises(InputError, match="no crystal in the FLIM image|IRF has 7 bins"):
            load_flim(path)


# --- baselines: per-pixel ML is calibrated; least squares is worse ------------------------------
def _synthetic(rng, n_pix=400, photons=1000.0, tau=2.0, merge=25):
    from bayes_sc.modeling.flim_data import FlimData
    from bayes_sc.modeling.graph import grid_graph

    n, bin_ns, period = 3125, 0.016, 50.0
    irf = gaussian_irf(n, bin_ns, 2.0, 0.18)
    mu = flim_expected_merged(irf, bin_ns, period, np.full(n_pix, tau), photons, 85.0, 0.002, merge)
    counts = rng.poisson(mu)
    mask = np.ones((20, n_pix // 20), bool)
    g = grid_graph(mask)
    return FlimData(
        path=None, counts=counts, irf=irf, bin_ns=bin_ns, period_ns=period, n_bins=n, merge=merge,
        pixel_um=0.2, pixel_um_known=True, photons=counts.sum(1).reshape(mask.shape),
        crystal_mask=mask, graph=g, edge_um=np.ones(mask.shape),
    )  # fmt: skip


def test_per_pixel_ml_is_calibrated_and_beats_least_squares(rng):
    from bayes_sc.baseline.flim import fit_pixels

    data = _synthetic(rng)
    ml = fit_pixels(data, loss="poisson")
    assert ml["global"]["irf_shift_ps"] == pytest.approx(85.0, abs=10.0)
    assert ml["ok"].all()
    z = (ml["tau"] - 2.0) / ml["tau_sd"]
    # 400 pixels: the mean of z has sd 0.05 and its sd a relative sd of 0.035
    assert abs(z.mean()) < 0.2 and 0.85 < z.std() < 1.15
    ls = fit_pixels(data, ml["global"], loss="ls")
    rmse = {k: np.sqrt(np.mean((r["tau"] - 2.0) ** 2)) for k, r in (("ml", ml), ("ls", ls))}
    assert rmse["ls"] > 1.2 * rmse["ml"]  # Neyman's χ² is biased at few counts per bin


# --- model structure (no sampling) -----------------------------------------------------------
@pytest.mark.parametrize("measured", [True, False])
def test_flim_model_structure(small_reduced, measured):
    from bayes_sc.baseline.flim import fit_pixels
    from bayes_sc.modeling.flim import PIX, TIME, build_flim_model
    from bayes_sc.modeling.flim_data import load_flim
    from bayes_sc.presets import load_preset

    data = load_flim(small_reduced, merge=25)
    if not measured:
        data.irf = None
    start = fit_pixels(data)
    model = build_flim_model(data, load_preset("cspbbr2cl"), start)
    names = {v.name for v in model.free_RVs}
    shared = {"tau_mu_u", "tau_sd", "tau_rho", "flim_amplitude_z", "flim_background_z"}
    irf = {"irf_shift"} if measured else {"irf_mean", "irf_fwhm_z", "irf_tail_z"}
    assert shared | irf <= names
    assert "tau_field_coef_u" in names or "tau_field_z" in names
    assert model.named_vars_to_dims["tau"] == (PIX,)
    assert model.named_vars_to_dims["flim_counts"] == (PIX, TIME)
    assert "irf_shift" in model.named_vars
    lp = model.point_logps()
    assert all(np.isfinite(v) for v in lp.values())


def test_tau_parameterisation_follows_the_photons():
    from bayes_sc.modeling.flim import tau_centred

    prior = {"field": {"centred": "auto"}}
    tau = np.exp(np.linspace(-0.3, 0.3, 50))
    many = {"tau": tau, "tau_sd": 0.02 * tau, "ok": np.ones(50, bool)}
    few = {"tau": tau, "tau_sd": 0.5 * tau, "ok": np.ones(50, bool)}
    assert tau_centred(prior, many) and not tau_centred(prior, few)
    assert tau_centred({"field": {"centred": False}}, many) is False
