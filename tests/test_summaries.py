"""The fast likelihood: Laplace summaries of every peak window, and the model built on them."""

import dataclasses

import h5py
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayes_sc.modeling.summaries import PARAMS, xray_summaries
from bayes_sc.modeling.windows import padded_layout
from bayes_sc.modeling.xray import (
    PIX,
    build_xray_model,
    exact_part,
    unsummarised,
    with_exact_counts,
)
from bayes_sc.physics import saxs_reflections, waxs_reflections, wh_widths
from bayes_sc.physics.peaks import FWHM_PER_SIGMA, wrap_deg


@pytest.fixture(scope="module")
def summarised(xray_inputs):
    data, preset, first, saxs, waxs = xray_inputs
    return (*xray_inputs, xray_summaries(data, preset, saxs, waxs, first))


def true_theta(truth_path, data, preset, region):
    """(pixel, peak, 5) true peak parameters of every crystal pixel, from the simulator."""
    g, sim = data.graph, preset["simulate"]["xray"]
    with h5py.File(truth_path) as f:
        t = {k: v[()] for k, v in f["xray"].items() if k != "outline_um"}
    T = {k: (v[g.rows, g.cols] if np.ndim(v) == 2 else v) for k, v in t.items()}
    hk = np.asarray(preset["xray"][f"{region}_reflections"], float)
    hk = np.concatenate([hk, -hk])
    if region == "saxs":
        q, p = saxs_reflections(T["a1"], T["a2"], T["gamma"], T["phi"], hk)
        ones = np.ones_like(q)
        sq, sp = (T[f"saxs_w_{k}"][:, None] / FWHM_PER_SIGMA * ones for k in ("q", "phi"))
        i0 = T["I_saxs"][:, None] * np.tile(sim["saxs_relative_intensity"], 2)
    else:
        q, p = waxs_reflections(np.full(g.n, T["a_AL"]), T["psi"], hk)
        K = preset["constants"]["K_scherrer"]["value"]
        wq, wp = wh_widths(q, T["L_nc"], T["g_q"][:, None] / 100, T["delta_psi"][:, None], K)
        sq, sp = wq / FWHM_PER_SIGMA, wp / FWHM_PER_SIGMA
        i0 = T["I_AL"][:, None] * np.tile(sim["waxs_relative_intensity"], 2)
    return np.stack([q, p, np.log(sq), np.log(sp), np.log(i0)], axis=-1)


@pytest.mark.parametrize("region", ["saxs", "waxs"])
def test_summaries_are_calibrated_against_the_truth(summarised, small_sim, region):
    """Each window's MLE ± Laplace sd covers the simulator's true peak parameters as a
    Gaussian should: z-scores with mean ≈ 0, sd ≈ 1, 90 % inside ±1.645."""
    data, preset, *_, summ = summarised
    s = summ[0] if region == "saxs" else summ[1]
    # nearly every window gives a usable summary; weak WAXS peaks cut by a detector gap or
    # edge may not (here 23 % of them)
    assert s.ok.mean() > (0.97 if region == "saxs" else 0.7)
    # the fraction of each fitted peak on observed bins: ≤ 1, and 1 for most windows
    assert np.all(s.observed[s.ok] < 1.005) and np.median(s.observed[s.ok]) > 0.9
    truth = true_theta(small_sim.parent / "truth.h5", data, preset, region)[s.pix, s.peak]
    d = s.theta - truth
    d[:, 1] = wrap_deg(d[:, 1])
    z = d[s.ok] / s.sd[s.ok]
    n = z.shape[0]
    # Monte-Carlo error of the mean of n unit normals: 1/sqrt(n); allow 4 of it plus 0.1
    assert np.all(np.abs(z.mean(0)) < 4 / np.sqrt(n) + 0.1), z.mean(0)
    # SAXS windows (thousands of counts, well-separated peaks) are Gaussian to MC error.
    # WAXS summaries are measured 5-30 % overconfident (sd of z 1.01-1.12 on a 25x25 scan,
    # up to 1.28 here): the tolerance records that, and the pooled coverage bounds it.
    tol_sd, lo_cover = (0.2, 0.86) if region == "saxs" else (0.35, 0.8)
    assert np.all(np.abs(z.std(0) - 1) < tol_sd), z.std(0)
    inside = (np.abs(z) < 1.645).mean()  # pooled over the 5 parameters
    assert lo_cover < inside < 0.95, inside


def test_summary_model_structure_and_likelihood(summarised):
    """The summary model observes whitened summaries of the usable windows, keeps the exact
    Poisson likelihood (with a background per window) for the windows without one and no
    other background terms, and its summary likelihood equals the multivariate normal
    density of the summaries (scipy oracle)."""
    data, preset, first, saxs, waxs, summ = summarised
    usable = tuple(s.usable() for s in summ)
    model = build_xray_model(data, preset, saxs, waxs, first, usable)
    obs = {v.name for v in model.observed_RVs}
    rest = {r: unsummarised(w, s) for r, w, s in zip(("saxs", "waxs"), (saxs, waxs), usable,
                                                      strict=True)}  # fmt: skip
    assert rest["waxs"] is not None  # this scan has weak and detector-cut WAXS windows
    assert obs == {"saxs_summary", "waxs_summary"} | {
        f"{r}_counts_exact" for r, w in rest.items() if w is not None
    }
    free = {v.name for v in model.free_RVs}
    background = {"background_scale", "flat_saxs", "flat_waxs"} | {
        f"{r}_{v}" for r in ("saxs", "waxs") for v in ("background_scale", "flat_background")
    }
    assert not background & free
    for region, w in rest.items():
        if w is None:
            continue
        n_peak = w.centre_q.shape[1]
        key = w.pix * n_peak + w.peak
        done = summ[0 if region == "saxs" else 1]
        # exactly the elements of the windows without a usable summary, every one of them
        assert not np.isin(key, done.pix[done.ok] * n_peak + done.peak[done.ok]).any()
        full = saxs if region == "saxs" else waxs
        missing = ~np.isin(full.pix * n_peak + full.peak, done.pix[done.ok] * n_peak
                           + done.peak[done.ok])  # fmt: skip
        assert w.size == missing.sum()
        factor = preset["xray"]["unsummarised_merge"][region]
        part = exact_part(full, done.usable(), data.bins, data.background, factor)
        y = model.rvs_to_values[model[f"{region}_counts_exact"]].eval()  # observed
        assert part[0].size == y.size and y.sum() == full.counts[missing].sum()
        n_win = np.unique(key).size
        for name in (f"{region}_background_scale_exact", f"{region}_flat_background_exact"):
            assert model.named_vars_to_dims[name] == (f"{region}_window_exact",)
        assert len(model.coords[f"{region}_window_exact"]) == n_win
        # predictive draws map back onto the windows' bins: the model would observe them
        for new in (y, y + 1):
            redrawn = with_exact_counts(full, done.usable(), new, data.bins, factor)
            assert np.array_equal(redrawn.counts[~missing], full.counts[~missing])
            again = exact_part(redrawn, done.usable(), data.bins, data.background, factor)
            rebuilt = padded_layout(again[0]).dense(again[0].counts, 0)[
                padded_layout(again[0]).mask
            ]
            assert np.array_equal(rebuilt, new)
    assert model.named_vars_to_dims["saxs_summary"] == ("saxs_window", "peak_param")
    assert list(model.coords["peak_param"]) == list(PARAMS)
    assert len(model.coords[PIX]) == data.graph.n
    ip = model.initial_point()
    assert np.isfinite(model.compile_logp()(ip))
    # oracle: Σ_w log N(θ̂_w; θ_w(fields), L Lᵀ), θ(fields) from the model's own deterministics
    s = usable[0]
    rv = model["saxs_summary"]

    def at_ip(expr):  # evaluate a model expression at the initial point (RVs → values)
        (expr,) = model.replace_rvs_by_values([expr])
        fn = model.compile_fn(expr, inputs=model.value_vars, on_unused_input="ignore")
        return fn(ip)

    whitened_mu = at_ip(rv.owner.inputs[-2])  # the Normal's mean
    assert np.all(rv.owner.inputs[-1].eval() == 1.0)  # ... and its unit sd
    mu = np.einsum("wij,wj->wi", s.chol, whitened_mu)
    want = sum(
        multivariate_normal(mu[i], s.chol[i] @ s.chol[i].T).logpdf(s.theta[i])
        for i in range(s.pix.size)
    )
    got = at_ip(model.logp(vars=[rv]))
    # whitening is a linear change of variables: densities differ by the constant log|L|
    log_det_l = np.log(np.abs(np.diagonal(s.chol, axis1=1, axis2=2))).sum()
    assert got == pytest.approx(want + log_det_l, rel=1e-9)


@pytest.mark.parametrize(
    ("mu_of", "want"),
    [
        # y ~ Poisson(e^θ): θ̂ = log y has bias −1/(2μ) + O(μ⁻²)
        ("exp", lambda th: -0.5 / np.exp(th)),
        # y ~ Poisson(θ²): θ̂ = √y has bias −1/(8θ) + O(θ⁻³) (Anscombe)
        ("square", lambda th: -1.0 / (8.0 * th)),
    ],
)
def test_poisson_mle_bias_matches_closed_forms(mu_of, want):
    """Cox–Snell bias of one-parameter Poisson MLEs whose first-order bias is known exactly."""
    import jax
    import jax.numpy as jnp

    from bayes_sc.modeling.summaries import poisson_mle_bias

    jax.config.update("jax_enable_x64", True)
    for th in (1.5, 3.0):
        p = jnp.array([th])
        fn = lambda x: jnp.exp(x) if mu_of == "exp" else x**2  # noqa: E731
        J = jax.jacfwd(fn)(p)
        cov = jnp.linalg.inv(J.T @ (J / fn(p)[:, None]))
        assert float(poisson_mle_bias(fn, p, cov)[0]) == pytest.approx(want(th), rel=1e-10)


def test_poisson_mle_bias_predicts_the_monte_carlo_bias(rng):
    """A Gaussian line of 150 counts on a flat background in 40 bins: the formula predicts the
    mean error of the Poisson MLE of (centre, log σ, log I0, log b) over 4000 replicates."""
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    from bayes_sc.modeling.summaries import poisson_mle_bias

    jax.config.update("jax_enable_x64", True)
    x = np.linspace(-5, 5, 40)
    truth = np.array([0.3, np.log(1.0), np.log(150.0), np.log(2.0)])

    def mu(p, xp=jnp):
        g = xp.exp(-0.5 * ((x - p[0]) / xp.exp(p[1])) ** 2) / xp.sqrt(2 * np.pi)
        return xp.exp(p[2]) * g * (x[1] - x[0]) / xp.exp(p[1]) + xp.exp(p[3])

    lam = mu(truth, np)
    J = np.asarray(jax.jacfwd(mu)(jnp.asarray(truth)))
    cov = np.linalg.inv(J.T @ (J / lam[:, None]))
    bias = np.asarray(poisson_mle_bias(mu, jnp.asarray(truth), jnp.asarray(cov)))
    nll = jax.jit(lambda p, y: jnp.sum(mu(p) - y * jnp.log(mu(p))))
    grad = jax.jit(jax.grad(nll))
    errs = []
    for y in rng.poisson(lam, size=(4000, x.size)).astype(float):
        r = minimize(nll, truth, args=(y,), jac=grad, method="BFGS", options={"gtol": 1e-9})
        errs.append(r.x - truth)
    errs = np.array(errs)
    mc_se = errs.std(0) / np.sqrt(len(errs))
    assert np.all(np.abs(errs.mean(0) - bias) < 3.5 * mc_se), (errs.mean(0), bias, mc_se)
    # the test has power: the bias of log σ (~6 % of its sd) is 4 Monte-Carlo errors from 0
    assert abs(bias[1] / mc_se[1]) > 3


@pytest.mark.parametrize("template", ["data", "none"])
def test_noise_free_summaries_are_unbiased(summarised, small_sim, template):
    """Summaries of each window's *expected* counts (the simulator's noise-free frames, binned
    as the reduction bins them) against the truth: the summary's deterministic error alone.
    Without a background the peak positions are exact. With the substrate template, every
    parameter stays within a fraction of its sd: the template's own noise and the window's
    flat density (its prior mode is off 0, so it stands in for part of the sloped template;
    docs/benchmarks.md) shift the radii per reflection by up to ~0.4 sd."""
    from bayes_sc.modeling.summaries import summarise_windows
    from bayes_sc.simulate import expected_reduced_xray

    data, preset, *_, waxs, _summ = summarised
    g = data.graph
    counts, _ = expected_reduced_xray(
        small_sim.parent, zip(g.rows, g.cols, strict=True), with_background=template == "data"
    )  # fmt: skip
    assert counts.shape == (g.n, data.bins["weight"].size)
    win = dataclasses.replace(waxs, counts=counts[waxs.pix, waxs.bin])
    truth = true_theta(small_sim.parent / "truth.h5", data, preset, "waxs")
    pr = preset["priors"]
    nuisance = (pr["background_scale"]["mu"], pr["background_scale"]["sigma"],
                pr["flat_background"]["sigma"])  # fmt: skip
    bg = data.background if template == "data" else None
    s = summarise_windows(win, data.bins, bg, np.exp(truth[..., 2:4]), nuisance_prior=nuisance,
                          bias_correct=False)  # fmt: skip
    assert s.ok.sum() >= 20
    d = s.theta[s.ok] - truth[s.pix[s.ok], s.peak[s.ok]]
    d[:, 1] = wrap_deg(d[:, 1])
    z = d / s.sd[s.ok]
    if template == "none":
        # positions exact; widths and intensities a little low: the flat density, fitted
        # where the truth has none, takes the peak's tails
        assert np.all(np.abs(z[:, 0]) < 0.03) and np.all(np.abs(z[:, 1]) < 0.05), z[:, :2]
        assert np.all((z[:, 2:].mean(0) < 0) & (z[:, 2:].mean(0) > -0.25)), z.mean(0)
    else:
        # the template's noise and the flat density's trade-off with its slope stay well
        # under the counting noise (measured here ≤ 0.38 sd; 25 x 25 scans ≤ 0.16 sd)
        assert np.all(np.abs(z) < 0.5), np.abs(z).max(0)
        assert np.all(np.abs(z[:, 1:].mean(0)) < 0.1), z.mean(0)  # (the radii: per reflection)


def test_summaries_marginalise_the_exact_models_background_prior(summarised):
    """The window fits use the preset's per-window background priors (the exact model's):
    pinning the substrate template 5 % above its scale takes counts from the peaks, lowering
    the intensity estimates by more than their standard deviation."""
    import copy

    data, preset, first, saxs, waxs, summ = summarised
    pinned = copy.deepcopy(preset)
    pinned["priors"]["background_scale"].update(mu=float(np.log(1.05)), sigma=0.005)
    _, waxs_pinned = xray_summaries(data, pinned, saxs, waxs, first)
    ok = summ[1].ok & waxs_pinned.ok
    shift = (waxs_pinned.theta[ok, 4] - summ[1].theta[ok, 4]) / summ[1].sd[ok, 4]
    assert ok.sum() >= 10 and np.mean(shift < 0) > 0.8 and np.median(shift) < -1, shift


def test_work_split_over_devices_equals_one_call():
    """Windows split across the JAX devices (padded with copies, cut back) give exactly what
    one vectorised call gives, for any number of windows."""
    import jax
    import jax.numpy as jnp

    from bayes_sc.modeling.summaries import _over_devices

    def fn(x, d):
        return jnp.sin(x) * d["a"], (x**2).sum(-1)

    fn = jax.vmap(fn)
    for n in (1, 2, 3, 7, 64):
        x = np.arange(n * 3, dtype=float).reshape(n, 3)
        d = {"a": np.linspace(0.0, 1.0, n)[:, None] * np.ones(3)}
        got, want = _over_devices(fn, x, d), fn(x, d)
        for g, w in zip(got, want, strict=True):
            assert isinstance(g, np.ndarray) and g.shape == w.shape
            np.testing.assert_array_equal(g, np.asarray(w))
