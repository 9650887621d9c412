"""The per-window background's sampling coordinates: the same prior as scale ~ LogNormal and
flat ~ HalfNormal, only straightened for NUTS."""

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from bayes_sc.modeling.background import window_background

PRIOR_S = {"mu": 0.1, "sigma": 0.2}
PRIOR_F = {"sigma": 5.0}
TEMPLATE = np.array([120.0, 0.0, 3.0e4])  # the second window has no template
WEIGHT = np.array([40.0, 2.0, 900.0])
COUNTS = np.array([150, 0, 41000])  # no counts: sampled in units of 1


def _derived(model):
    """(scale, flat) as a function of the sampled coordinates."""
    outs = model.replace_rvs_by_values([model["scale"], model["flat"]])
    return model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore")


@pytest.fixture(scope="module")
def model():
    with pm.Model(coords={"w": np.arange(3)}) as m:
        window_background(("scale", "flat"), "w", TEMPLATE, WEIGHT, COUNTS, PRIOR_S, PRIOR_F)
    return m


def test_density_is_the_scale_and_flat_priors(model, rng):
    """At random points the log density of the sampled coordinates equals scipy's LogNormal ×
    HalfNormal density of (scale, flat) times the Jacobian scale·flat of the map to
    (log scale, log flat), whose map to (log total, log ratio) has unit Jacobian, times
    d log total / dz = 1/√N."""
    logp = model.compile_logp(sum=False)
    derived = _derived(model)
    for _ in range(5):
        point = {"scale_split": rng.normal([2.0, -1.0], [3.0, 3.0], size=(3, 2))}
        s, f = derived(point)
        want = (
            stats.lognorm.logpdf(s, PRIOR_S["sigma"], scale=np.exp(PRIOR_S["mu"]))
            + stats.halfnorm.logpdf(f, scale=PRIOR_F["sigma"])
            + np.log(s)
            + np.log(f)
            - 0.5 * np.log(np.maximum(COUNTS, 1))
        )
        np.testing.assert_allclose(logp(point)[0], want, rtol=1e-7)


def test_inverse_map_and_prior_draws(model, rng):
    """Prior draws of the sampled coordinates map back to scale and flat distributed as their
    priors (Kolmogorov–Smirnov, 4000 draws), and (z, log ratio) are what they say."""
    draws = pm.draw([model["scale"], model["flat"], model["scale_split"]], draws=4000,
                    random_seed=rng)  # fmt: skip
    s, f, split = draws
    t = np.where(TEMPLATE > 0, TEMPLATE, WEIGHT)
    n = np.maximum(COUNTS, 1)
    z = (np.log(s * t + f * WEIGHT) - np.log(n)) * np.sqrt(n)
    np.testing.assert_allclose(split[..., 0], z, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(split[..., 1], np.log(f * WEIGHT / (s * t)), rtol=1e-9, atol=1e-9)
    prior_s = stats.lognorm(PRIOR_S["sigma"], scale=np.exp(PRIOR_S["mu"]))
    for k in range(3):
        ks_s = stats.kstest(s[:, k], prior_s.cdf)
        ks_f = stats.kstest(f[:, k], stats.halfnorm(scale=PRIOR_F["sigma"]).cdf)
        assert ks_s.pvalue > 1e-3 and ks_f.pvalue > 1e-3, (k, ks_s, ks_f)
    # the test has power: a flat prior twice as wide is rejected
    assert stats.kstest(f[:, 0], stats.halfnorm(scale=2 * PRIOR_F["sigma"]).cdf).pvalue < 1e-6


def test_starting_point_is_the_observed_total(model):
    """The start: the window's observed counts, split as the scale prior's median and the
    flat prior's mean would split them."""
    point = model.initial_point()
    s, f = _derived(model)(point)
    t = np.where(TEMPLATE > 0, TEMPLATE, WEIGHT)
    np.testing.assert_allclose(s * t + f * WEIGHT, np.maximum(COUNTS, 1), rtol=1e-9)
    ratio = PRIOR_F["sigma"] * np.sqrt(2 / np.pi) * WEIGHT / (np.exp(PRIOR_S["mu"]) * t)
    np.testing.assert_allclose(f * WEIGHT / (s * t), ratio, rtol=1e-9)
