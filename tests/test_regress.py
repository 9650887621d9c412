"""The structure → optics regression: profiles, collinearity, model, recovery, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from bayes_sc.errors import InputError
from bayes_sc.presets import available_presets, load_preset
from bayes_sc.regress import load_settings, regress
from bayes_sc.regress.collinearity import collinearity_warnings, design_diagnostics
from bayes_sc.regress.profiles import estimate_profile, spline_basis
from bayes_sc.simulate.posteriors import synthetic_crystal

SEPARABLE = {"a_mean": 0.25, "delta_psi": 1.0, "g_q": 20.0}
LIMITS = {k: v["value"] for k, v in load_settings()["collinearity"].items()}


def _preset(separable: bool) -> dict:
    preset = load_preset("cspbbr2cl")
    if not separable:
        return preset
    sim = dict(preset["simulate"])
    sim["xray"] = dict(sim["xray"], profile_scale_um=SEPARABLE)
    return dict(preset, simulate=sim)


# --- profiles ------------------------------------------------------------------------------------


def test_spline_basis_is_a_partition_of_unity_and_adapts_to_few_edges():
    e = np.linspace(0.5, 4.0, 40)
    basis = spline_basis(e, max_interior_knots=2)
    B = basis(e)
    assert B.shape == (40, 6) and basis.degree == 3
    np.testing.assert_allclose(B.sum(axis=1), 1.0, atol=1e-12)
    few = spline_basis([0.5, 1.0, 0.5, 1.0, 1.12])  # 3 distinct edge distances (a 6x6 scan)
    assert few.size <= 3 and few.degree == 2
    with pytest.raises(ValueError, match="two distinct"):
        spline_basis([0.5, 0.5])


def test_spline_interior_knots_grow_with_the_distinct_edge_distances_up_to_the_cap():
    """A knot per three distinct edge distances: a 25 x 25 scan (~30) takes the default 8, a
    14 x 14 one (11) only 3, whose hold-out continuation would otherwise extrapolate a spline
    with a piece per ring (measured: 50 nm/um at 8 knots against 2 at 3)."""
    many = np.linspace(0.5, 4.5, 30)
    assert spline_basis(np.repeat(many, 10), max_interior_knots=8).size == 8 + 4
    assert spline_basis(many, max_interior_knots=2).size == 2 + 4  # the cap
    eleven = np.linspace(0.5, 2.5, 11)
    basis = spline_basis(np.repeat(eleven, 8), max_interior_knots=8)
    assert basis.size == 3 + 4 and basis.degree == 3
    assert spline_basis(np.linspace(0.5, 2.0, 7), max_interior_knots=8).size == 2 + 4


def test_spline_knots_follow_the_pixels_where_every_piece_holds_two_edge_distances():
    """A crystal's pixels crowd at its edge: the knots sit at the pixels' quantiles there (a
    short end piece for the optical pixels beyond the X-ray range to read), unless a piece
    would then hold a single ring of pixels, when they fall back to the distinct values'."""
    rings = np.array([0.5, 0.71, 1.0, 1.12, 1.41, 1.5, 1.58, 1.8, 2.0, 2.24, 2.5, 3.0, 3.5, 4.0])
    counts = np.array([40, 36, 32, 30, 28, 26, 24, 22, 20, 18, 16, 12, 8, 4])
    big = spline_basis(np.repeat(rings, counts))
    np.testing.assert_allclose(
        big.knots[4:-4], np.quantile(np.repeat(rings, counts), [1 / 3, 2 / 3])
    )
    assert big.knots[4] < np.quantile(rings, 1 / 3)  # nearer the edge than the rings' quantile
    # an outer ring holding half the pixels: the first knot would leave it a piece of its own
    lopsided = np.repeat(rings[:8], [400, 30, 30, 30, 30, 30, 30, 30])
    small = spline_basis(lopsided)
    np.testing.assert_allclose(small.knots[4:-4], np.quantile(rings[:8], [1 / 3, 2 / 3]))
    for b, e in ((big, rings), (small, rings[:8])):
        pieces = np.searchsorted(b.knots[4:-4], e, side="right")
        assert np.bincount(pieces).min() >= 2


def test_profile_band_covers_the_true_profile_at_its_nominal_rate(rng):
    """Fields scatter about a smooth profile; each replicate's 90 % band at five edge
    distances must cover the truth 90 % of the time (400 replicates: MC error 0.7 %)."""
    e = np.repeat(np.linspace(0.5, 4.0, 15), 8)
    truth = lambda x: 8.0 + 2.5 * (1 - np.exp(-x / 1.2))  # noqa: E731
    at = np.array([0.6, 1.0, 2.0, 3.0, 3.9])
    covered = []
    for _ in range(400):
        field = truth(e) + 0.1 * rng.standard_normal(e.size)
        draws = field + 0.03 * rng.standard_normal((200, e.size))  # posterior noise
        prof = estimate_profile("a_mean", "nm", draws, e)
        _, lo, hi = prof.band(at, 0.9)
        covered.append((lo <= truth(at)) & (truth(at) <= hi))
    rate = np.mean(covered)
    # The band is conservative by at most the posterior noise (0.03 on 0.1 scatter).
    assert 0.88 <= rate <= 0.95, rate


def test_profile_covariance_adds_draw_spread_to_the_fit_error(rng):
    e = np.linspace(0.5, 4.0, 60)
    field = np.sin(e) + 0.05 * rng.standard_normal(e.size)
    fixed = estimate_profile("g_q", "percent", np.tile(field, (50, 1)), e)
    np.testing.assert_allclose(fixed.draw_cov, 0.0, atol=1e-20)
    noisy = estimate_profile("g_q", "percent", field + 0.2 * rng.standard_normal((500, 60)), e)
    k = fixed.basis.size  # the spline block (the last two: slope changes beyond the ends)
    assert np.all(np.diag(noisy.cov)[:k] > np.diag(fixed.cov)[:k])
    assert 0.03 < fixed.residual_sd < 0.07


def _ring_edges(seed, extent_um=10.0, step_um=0.5):
    """Edge distances of a simulated crystal outline's scan pixels (SPEC §5) [µm]."""
    from bayes_sc.physics import edge_distance_grid
    from bayes_sc.simulate.fields import crystal_outline, grid_mask

    rng = np.random.default_rng(seed)
    outline = crystal_outline(
        np.full(2, (extent_um - step_um) / 2), np.full(2, 0.36 * extent_um), rng
    )
    n = int(np.ceil(extent_um / step_um))
    mask = grid_mask(outline, (n, n), (step_um, step_um))
    return edge_distance_grid(mask, (step_um, step_um))[mask]


def test_profile_continuation_beyond_the_edge_range_carries_its_shape_error(rng):
    """A profile representable by the spline continues exactly (slope-change sd ~ 0); one that
    steepens towards the edge (exponential, 0.4-1.2 µm) is missed beyond the X-ray range by its
    end piece, and the hold-out continuation brings the misses to ~1 sd where the spline's own
    covariance leaves them at ~2 sd (0.3 µm beyond the first ring, where FLIM pixels sit)."""
    from bayes_sc.regress.profiles import continuation_sd

    e = _ring_edges(0)
    np.testing.assert_allclose(continuation_sd(1 + 0.5 * e - 0.1 * e**2 + 0.01 * e**3, e), 0.0,
                               atol=1e-6)  # fmt: skip
    z, z_spline = [], []
    for seed in range(4):
        e = _ring_edges(seed)
        for scale in (0.4, 0.7, 1.2):
            truth = lambda x, s=scale: 10 - 2 * np.exp(-x / s)  # noqa: E731
            # a posterior: its mean off the truth by about its own sd (0.01 nm), draws about it
            mean_field = truth(e) + 0.01 * rng.standard_normal(e.size)
            draws = mean_field + 0.01 * rng.standard_normal((200, e.size))
            prof = estimate_profile("a_mean", "nm", draws, e)
            at = e.min() - 0.3
            mean, lo, hi = prof.band([at], 0.9)
            z.append((mean[0] - truth(at)) / ((hi[0] - lo[0]) / 3.29))
            B, k = prof.basis([at]), prof.basis.size
            z_spline.append((mean[0] - truth(at)) / np.sqrt(B @ prof.cov[:k, :k] @ B.T)[0, 0])
    assert np.sqrt(np.mean(np.square(z))) < 1.3
    assert np.sqrt(np.mean(np.square(z_spline))) > 1.5
    # a flat field's noise is not a bend: the hold-outs' misses, less what the noise explains
    e = _ring_edges(1)
    flat = [1.0 + 0.1 * rng.standard_normal(e.size) for _ in range(20)]
    raw = np.mean([continuation_sd(f, e)[0] for f in flat])
    net = np.mean([continuation_sd(f, e, noise_var=np.full(e.size, 0.01))[0] for f in flat])
    assert net < 0.65 * raw  # (about half: max over two hold-outs of a floored estimate)


# --- collinearity --------------------------------------------------------------------------------


def test_collinearity_diagnostics_and_warning_on_designed_cases(rng):
    e = rng.uniform(0, 4, 500)
    collinear = np.column_stack(
        [1 - np.exp(-e / 1.2), 2 * (1 - np.exp(-e / 1.2)) + 1e-3 * rng.standard_normal(500), e]
    )
    separable = rng.standard_normal((500, 3))
    names = ["a_mean", "delta_psi", "g_q"]
    d_col, d_sep = design_diagnostics(collinear, names), design_diagnostics(separable, names)
    assert d_col["condition_number"] > 100 and d_sep["condition_number"] < 2
    quiet = collinearity_warnings("tau", d_sep, np.eye(3), np.full(3, 0.95), LIMITS)
    assert quiet == []
    bcorr = np.eye(3)
    bcorr[0, 1] = bcorr[1, 0] = -0.97
    loud = collinearity_warnings("tau", d_col, bcorr, np.array([0.3, 0.3, 0.9]), LIMITS)
    assert len(loud) == 1
    assert "cannot fully separate" in loud[0] and "a_mean and delta_psi" in loud[0]


def test_regression_toml_is_not_listed_as_a_material():
    assert "regression" not in available_presets()


def test_user_settings_override_only_what_they_set(tmp_path):
    """A settings file of an older version (lacking newer keys) still works: the shipped file
    fills in what it lacks; what it sets wins; an unreadable one is named."""
    user = tmp_path / "mine.toml"
    user.write_text("[priors.beta_crystal_sd]\nsigma = 0.05\n")
    settings = load_settings(user)
    default = load_settings()
    assert settings["priors"]["beta_crystal_sd"]["sigma"] == 0.05
    assert settings["priors"]["beta_crystal_sd"]["dist"] == "HalfNormal"
    assert settings["profiles"] == default["profiles"]
    assert settings["priors"]["beta_std"] == default["priors"]["beta_std"]
    user.write_text("[priors\n")
    with pytest.raises(InputError, match="mine.toml.*cannot read"):
        load_settings(user)


# --- the model, end to end on calibrated synthetic posteriors ------------------------------------


@pytest.fixture(scope="module")
def crystals(tmp_path_factory):
    """Two small synthetic crystals: collinear profiles (the default preset) and separable ones."""
    out = tmp_path_factory.mktemp("regress")
    rng = np.random.default_rng(11)
    col = synthetic_crystal(out / "col", _preset(False), rng, name="C", scan=(14, 14))
    sep = synthetic_crystal(out / "sep", _preset(True), rng, name="S", scan=(14, 14))
    return col, sep


def _files(c):
    return [c["xray"], c["flim"], c["pl"]]


def test_regression_structure_diagnostics_and_collinearity_warning(crystals, tmp_path):
    """The default preset's ⟨a⟩ and δψ profiles share one shape in edge distance: their slopes
    cannot be separated, and regress must say so; what the data do determine, the law's
    prediction of the response from edge to centre, must cover the truth."""
    col, _ = crystals
    out = tmp_path / "regression.nc"
    _, summary = regress(
        _files(col), out, draws=300, tune=400, seed=1, progress=False, posterior_predictive=True
    )
    tree = xr.open_datatree(out)
    post = tree["posterior"].to_dataset()
    # posterior predictive: profiles drawn, then pixel noise (the likelihood's own generator)
    pp, obs = tree["posterior_predictive"].to_dataset(), tree["observed_data"].to_dataset()
    for r in ("tau", "blueshift"):
        assert pp[f"{r}_obs"].dims == ("chain", "draw", f"{r}_unit")
        assert pp[f"{r}_obs"].sizes[f"{r}_unit"] == obs[f"{r}_obs"].size
        assert np.corrcoef(pp[f"{r}_obs"].mean(("chain", "draw")), obs[f"{r}_obs"])[0, 1] > 0.5
    assert post["beta"].dims == ("chain", "draw", "response", "covariate")
    assert post.sizes["draw"] == 300
    assert "integrated out" in tree.attrs["errors_in_variables"]
    assert list(post["response"].values) == ["blueshift", "tau"]
    assert list(post["covariate"].values) == ["a_mean", "delta_psi", "g_q"]
    for name in ("beta_std", "intercept", "sigma"):
        assert name in post
    assert post["intercept"].dims[2:] == ("response",) and post["sigma"].dims[2:] == ("response",)
    assert int(tree["sample_stats"]["diverging"].sum()) == 0
    assert "profiles" in tree.children and "constant_data" in tree.children
    assert any("a_mean and delta_psi" in w for w in summary["warnings"]), summary["warnings"]
    assert json.loads(tree.attrs["warnings"]) == summary["warnings"]
    # The law's prediction between the outermost and innermost X-ray edge distances.
    preset = _preset(False)
    from bayes_sc.simulate.fields import structural_profiles

    bands = tree["profiles"].to_dataset()
    edges = bands["edge_0"].values[[0, -1]]
    prof = structural_profiles(edges, preset["simulate"]["xray"])
    for r in ("tau", "blueshift"):
        d_true = sum(col["beta"][r][c] * (prof[c][1] - prof[c][0]) for c in prof)
        d_post = sum(
            post["beta"].sel(response=r, covariate=c).values
            * (bands[f"{c}_mean_0"].values[-1] - bands[f"{c}_mean_0"].values[0])
            for c in prof
        )
        lo, hi = np.quantile(d_post, [0.005, 0.995])  # 99 %: two checks, either may fail
        assert lo <= d_true <= hi, (r, d_true, lo, hi)


def test_pooled_model_has_crystal_level_slopes(crystals, tmp_path):
    import pymc as pm

    from bayes_sc.regress import crystal_profiles, response_data
    from bayes_sc.regress.inputs import read_posteriors
    from bayes_sc.regress.model import build_regression_model

    col, sep = crystals
    settings = load_settings()
    cry = read_posteriors(_files(col) + _files(sep))
    assert [c.name for c in cry] == ["C", "S"]
    profiles = [crystal_profiles(c, settings) for c in cry]
    resp = [response_data(n, cry, profiles, settings) for n in ("blueshift", "tau")]
    model = build_regression_model(resp, profiles, ["C", "S"], settings["priors"])
    names = {v.name for v in model.free_RVs}
    assert {"beta_std", "beta_crystal_sd", "intercept_crystal_sd", "crystal_coef_z"} <= names
    assert model.named_vars_to_dims["crystal_coef_z"] == ("crystal", "response", "coefficient")
    assert model.named_vars_to_dims["beta_crystal"] == ("crystal", "response", "covariate")
    assert model.named_vars_to_dims["tau_obs"] == ("tau_unit",)
    assert model.named_vars_to_dims["beta_crystal_sd"] == ("response", "covariate")
    assert np.isfinite(model.compile_logp()(model.initial_point()))
    assert isinstance(model, pm.Model)
    # `shared = true`: one crystal-level sd per response, for all its slopes
    priors = dict(settings["priors"])
    priors["beta_crystal_sd"] = dict(priors["beta_crystal_sd"], shared=True)
    shared = build_regression_model(resp, profiles, ["C", "S"], priors)
    assert shared.named_vars_to_dims["beta_crystal_sd"] == ("response",)
    assert np.isfinite(shared.compile_logp()(shared.initial_point()))


# --- bad input -----------------------------------------------------------------------------------


def _write(ds, attrs, path):
    tree = xr.DataTree.from_dict({"posterior": ds})
    tree.attrs.update(attrs)
    tree.to_netcdf(path)


def test_posterior_without_edge_distances_is_refused_and_nothing_written(crystals, tmp_path):
    col, _ = crystals
    tree = xr.open_datatree(col["flim"])
    ds = tree["posterior"].to_dataset().drop_vars("flim_edge_um")
    bad = tmp_path / "flim_noedge.nc"
    _write(ds, tree.attrs, bad)
    out = tmp_path / "r.nc"
    with pytest.raises(InputError, match="no edge distances") as err:
        regress([col["xray"], bad], out, progress=False)
    assert str(bad) in str(err.value)
    assert not out.exists() and not list(tmp_path.glob("r.nc*"))


def test_responses_without_edge_overlap_are_refused(crystals, tmp_path):
    col, _ = crystals
    tree = xr.open_datatree(col["flim"])
    ds = tree["posterior"].to_dataset()
    ds = ds.assign_coords(flim_edge_um=ds["flim_edge_um"] + 50.0)  # far inside a huge crystal
    bad = tmp_path / "flim_far.nc"
    _write(ds, tree.attrs, bad)
    out = tmp_path / "r.nc"
    with pytest.raises(InputError, match="overlap"):
        regress([col["xray"], bad], out, progress=False)
    assert not out.exists()


def test_crystal_without_xray_posterior_and_unreadable_files(crystals, tmp_path):
    col, _ = crystals
    with pytest.raises(InputError, match="no X-ray posterior"):
        regress([col["flim"]], tmp_path / "r.nc", progress=False)
    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf")
    with pytest.raises(InputError, match="junk.nc.*not a readable posterior"):
        regress([junk], tmp_path / "r.nc", progress=False)
    with pytest.raises(InputError, match="overwrite"):
        regress([col["xray"], col["flim"]], col["flim"], progress=False)


def test_regress_command_line(crystals, tmp_path, capsys):
    from bayes_sc.cli import main

    col, _ = crystals
    out = tmp_path / "regression.nc"
    args = ["regress", *map(str, _files(col)), "-o", str(out), "--draws", "100", "--tune", "200"]
    assert main([*args, "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "with 90 % credible intervals" in text and "tau ~ a_mean" in text
    assert "ns/nm" in text and f"wrote {out}" in text and out.exists()
    assert json.loads(xr.open_datatree(out).attrs["settings"])["target_accept"] == 0.95
    assert main([*args, "--target-accept", "1.2", "-o", str(tmp_path / "r1.nc")]) == 2
    assert "--target-accept must be in (0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "r1.nc").exists()
    # bad input: one line on stderr, exit status 2, nothing written
    missing = tmp_path / "nope.nc"
    assert main(["regress", str(missing), "-o", str(tmp_path / "r2.nc")]) == 2
    err = capsys.readouterr().err
    assert "nope.nc: file not found" in err and not (tmp_path / "r2.nc").exists()
    # --settings overrides the shipped priors key by key: a tight prior on the slopes binds
    tight = tmp_path / "tight.toml"
    tight.write_text("[priors.beta_std]\nsigma = 0.001\n")
    out3 = tmp_path / "r3.nc"
    assert main([*args[:-6], "-o", str(out3), "--draws", "100", "--tune", "200", "--quiet",
                 "--settings", str(tight)]) == 0  # fmt: skip
    capsys.readouterr()
    beta_std = xr.open_datatree(out3)["posterior"]["beta_std"].values
    assert np.abs(beta_std).max() < 0.005
    tight.write_text("[priors\n")
    assert main([*args, "--settings", str(tight), "-o", str(tmp_path / "r4.nc")]) == 2
    err = capsys.readouterr().err
    assert "tight.toml" in err and not (tmp_path / "r4.nc").exists()


def test_responses_are_per_pixel_likelihood_summaries_else_posterior_with_a_warning(
    crystals, tmp_path, caplog
):
    import logging

    from bayes_sc.regress.inputs import read_posteriors

    col, _ = crystals
    flim = xr.open_datatree(col["flim"])
    const = flim["constant_data"].to_dataset()
    tau_ml = const["tau_ml"].values.copy()
    tau_ml[3] = np.nan  # a pixel whose own fit failed: left out
    edited = tmp_path / "flim_ml.nc"
    const_ml = const.assign(tau_ml=("flim_pixel", tau_ml))
    tree = xr.DataTree.from_dict({"posterior": flim["posterior"].to_dataset(),
                                  "constant_data": const_ml})  # fmt: skip
    tree.attrs.update(flim.attrs)
    tree.to_netcdf(edited)
    (cry,) = read_posteriors([col["xray"], edited, col["pl"]])
    tau = cry.responses["tau"]
    assert tau.summary == "likelihood"
    np.testing.assert_array_equal(tau.value, np.delete(tau_ml, 3))
    np.testing.assert_array_equal(tau.sd, np.delete(const["tau_ml_se"].values, 3))
    edge = flim["posterior"]["flim_edge_um"].values
    np.testing.assert_array_equal(tau.edge_um, np.delete(edge, 3))
    # blueshift from E_peak_ml on the posterior's own centre (E_peak - blueshift / 1000)
    pl = xr.open_datatree(col["pl"])
    post = pl["posterior"]
    centre = float((post["E_peak"] - post["blueshift"] / 1000.0).mean())
    blue = cry.responses["blueshift"]
    e_ml = pl["constant_data"]["E_peak_ml"].values
    np.testing.assert_allclose(blue.value, 1000 * (e_ml - centre))
    np.testing.assert_allclose(blue.sd, 1000 * pl["constant_data"]["E_peak_ml_se"].values)
    # an older posterior without the summaries: its marginals, and a warning saying why not
    bare = tmp_path / "flim_bare.nc"
    _write(flim["posterior"].to_dataset(), flim.attrs, bare)
    with caplog.at_level(logging.WARNING, logger="bayes_sc.regress.inputs"):
        (cry,) = read_posteriors([col["xray"], bare])
    tau = cry.responses["tau"]
    assert tau.summary == "posterior"
    post_mean = flim["posterior"]["tau"].mean(("chain", "draw")).values
    np.testing.assert_allclose(tau.value, post_mean)
    assert post_mean.shape == tau.sd.shape
    assert "no per-pixel likelihood summary" in caplog.text and "too narrow" in caplog.text
