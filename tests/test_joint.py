"""The joint model (``fit --model joint``): the law's covariates, model structure, bad input.

Sampling it is measured by ``benchmarks/joint_vs_two_stage.py`` (minutes); here the structure
is checked without sampling.
"""

import numpy as np
import pytest
from pytensor.graph.traversal import ancestors

from bayes_sc.cli import main
from bayes_sc.modeling.law import covariate_projection
from bayes_sc.presets import load_preset, load_regression_settings
from bayes_sc.regress.profiles import estimate_profile


def test_covariate_projection_is_the_least_squares_profile(rng):
    """H @ field equals the two-stage regression's profile of that field at the units."""
    edge = rng.uniform(0.0, 3.0, 60)
    field = 9.0 + 0.5 * edge - 0.1 * edge**2 + 0.05 * rng.standard_normal(60)
    units = rng.uniform(0.1, 2.9, 25)
    H, n_clamped = covariate_projection(edge, units, max_interior_knots=2)
    prof = estimate_profile("a_mean", "nm", field[None, :], edge, 2)
    np.testing.assert_allclose(H @ field, prof.evaluate(units), rtol=1e-10)
    assert H.shape == (25, 60) and n_clamped == 0
    # a constant field maps to the same constant (the basis is a partition of unity)
    np.testing.assert_allclose(H @ np.full(60, 2.5), 2.5, rtol=1e-10)
    # units far outside the X-ray range take the profile's value at the limit (+ margin)
    H2, n2 = covariate_projection(edge, [edge.max() + 5.0], margin_um=0.3)
    H3, _ = covariate_projection(edge, [edge.max() + 0.3], margin_um=0.3)
    assert n2 == 1
    np.testing.assert_allclose(H2, H3)


def test_covariate_projection_needs_more_pixels_than_coefficients():
    with pytest.raises(ValueError, match="cannot pin"):
        covariate_projection([0.5, 1.0], [0.7])


@pytest.fixture(scope="module")
def joint_model(small_reduced):
    from bayes_sc.inference.fit import prepare_xray
    from bayes_sc.inference.fit_flim import prepare_flim
    from bayes_sc.modeling.joint import build_joint_model
    from bayes_sc.modeling.pl import e_peak_centred, first_estimates
    from bayes_sc.modeling.pl_data import load_pl

    preset = load_preset("cspbbr2cl")
    xray = prepare_xray(small_reduced, preset)
    flim = prepare_flim(small_reduced, preset)
    pl_data = load_pl(small_reduced)
    start = first_estimates(pl_data, preset)
    pl = (pl_data, start, e_peak_centred(preset["priors"]["E_peak"], start))
    model = build_joint_model(xray, preset, load_regression_settings(), flim=flim, pl=pl)
    return model, xray, flim, pl


def test_joint_model_structure(joint_model):
    model, xray, flim, pl = joint_model
    assert model.coords["response"] == ("blueshift", "tau")
    assert model.coords["covariate"] == ("a_mean", "delta_psi", "g_q")
    names = {v.name for v in model.free_RVs} | {v.name for v in model.deterministics}
    # every modality's SPEC §7 variables and the regression's
    assert {"a_mean", "delta_psi", "g_q", "a_AL", "L_nc", "tau", "irf_shift", "E_peak",
            "blueshift", "beta", "beta_std", "intercept", "sigma"} <= names  # fmt: skip
    # the law replaces the responses' own spatial priors (no BYM2 mean of log tau or E_peak)
    assert not {"tau_mu_u", "tau_sd", "E_peak_sd"} & names
    dims = model.named_vars_to_dims
    assert dims["beta"] == ("response", "covariate") and dims["intercept"] == ("response",)
    assert dims["tau"] == ("flim_pixel",) and dims["E_peak"] == ("pl_point",)
    tau_out = model.replace_rvs_by_values([model["tau"]])[0]
    vals = model.value_vars
    tau = model.compile_fn(tau_out, inputs=vals, on_unused_input="ignore", point_fn=True)
    assert tau(model.initial_point()).shape == (flim[0].graph.n,)
    # tau and E_peak (or, where their own data pin them and they are sampled as themselves,
    # their residual priors) depend on the X-ray covariate fields and the law's slopes
    potentials = {p.name: p for p in model.potentials}
    for resp, beta in (("tau", "beta_std_tau"), ("E_peak", "beta_std_blueshift")):
        resid = potentials.get(f"{resp}_field_resid_prior")
        up = set(ancestors([model[resp]] + ([resid] if resid is not None else [])))
        assert model[beta] in up
        assert model["delta_psi_field_coef_u"] in up
    observed = {v.name for v in model.observed_RVs}
    assert {"saxs_summary", "waxs_summary", "flim_counts", "pl_counts"} <= observed
    assert observed <= {"saxs_summary", "waxs_summary", "saxs_counts_exact", "waxs_counts_exact",
                        "flim_counts", "pl_counts"}  # fmt: skip
    # the initial point is finite, every term
    logps = model.point_logps()
    assert all(np.isfinite(v) for v in logps.values()), logps


def test_joint_intercept_and_sigma_are_in_natural_units(joint_model):
    """At β = 0 the law is flat: τ's intercept is the τ map's mean and the residual sd s_τ σ*."""
    model, *_ = joint_model
    law = model.law_constants["tau"]
    outs = model.replace_rvs_by_values([model["intercept"], model["sigma"], model["tau_field"]])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", point_fn=True)
    point = model.initial_point()
    point["sigma_std_tau_log__"] = np.log(2.0)
    assert np.all(point["beta_std_tau"] == 0)
    intercept, sigma, tau = fn(point)
    assert intercept[1] == pytest.approx(tau.mean())
    assert sigma[1] == pytest.approx(2.0 * law["y_scale"])
    assert 0.5 < intercept[1] < 10.0  # ns, a perovskite NC lifetime


def test_joint_needs_a_response(small_reduced, tmp_path, capsys):
    import h5py

    red = tmp_path / "xray_only.h5"
    with h5py.File(small_reduced, "r") as src, h5py.File(red, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        src.copy("xray", dst)
    out = tmp_path / "joint.nc"
    assert main(["fit", str(red), "-o", str(out), "--model", "joint", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "xray_only.h5" in err and "no FLIM or PL data" in err
    assert not out.exists()


def test_pinned_choice_compares_errors_with_the_spread_beyond_noise(rng):
    from bayes_sc.modeling.joint import pinned

    y = 2.0 + 0.3 * rng.standard_normal(200)  # responses spread 0.3 beyond their noise
    assert pinned(y, np.full(200, 0.02))  # precise units: sampled as themselves
    noisy = 2.0 + np.sqrt(0.03**2 + 0.1**2) * rng.standard_normal(200)
    assert not pinned(noisy, np.full(200, 0.1))  # noise dominates: law + non-centred residual
    assert pinned(noisy, np.full(200, 0.1), True) and not pinned(y, np.full(200, 0.02), False)
