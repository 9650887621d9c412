"""The pixel graph and the BYM2 field: structure and prior moments against direct algebra."""

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from bayes_sc.modeling.graph import grid_graph
from bayes_sc.modeling.spatial import bym2_field


def _mask():
    m = np.zeros((6, 7), bool)
    m[1:5, 1:6] = True
    m[0, 3] = True
    m[5, 0] = True  # an isolated pixel: its own component
    return m


def test_graph_structure_and_null_space():
    g = grid_graph(_mask())
    assert g.n == 22 and g.n_components == 2
    # 4x5 block: 4*4 + 3*5 = 31 edges, plus (0,3)-(1,3)
    assert len(g.edges) == 32
    Q = np.diag(np.bincount(g.edges.ravel(), minlength=g.n).astype(float))
    Q[g.edges[:, 0], g.edges[:, 1]] = Q[g.edges[:, 1], g.edges[:, 0]] = -1
    np.testing.assert_allclose(g.eigvecs @ np.diag(g.eigvals) @ g.eigvecs.T, Q, atol=1e-10)
    # one null mode per component, less the constant one (the field mean carries it)
    assert np.sum(g.eigvals == 0) == 1 and g.eigvecs.shape == (g.n, g.n - 1)
    np.testing.assert_allclose(g.eigvecs.T @ np.ones(g.n), 0.0, atol=1e-10)
    np.testing.assert_allclose(g.eigvecs.T @ g.eigvecs, np.eye(g.n - 1), atol=1e-10)
    grid = g.to_grid(np.arange(g.n))
    assert grid[1, 1] == g.index[1, 1] and np.isnan(grid[0, 0])


def test_scaling_gives_unit_geometric_mean_variance():
    g = grid_graph(_mask())
    cov = g.eigvecs @ np.diag(g.structured_variance()) @ g.eigvecs.T
    d = np.diag(cov)
    connected = d > 0
    assert np.exp(np.mean(np.log(d[connected]))) == pytest.approx(1.0)
    assert d[g.index[5, 0]] == 0.0  # the isolated pixel has no structured part
    # the structured part sums to zero on each component
    block = g.index[g.mask] != g.index[5, 0]
    np.testing.assert_allclose(cov[np.ix_(block, block)].sum(axis=1), 0.0, atol=1e-10)


def test_second_order_structure_is_the_scaled_pseudo_inverse_of_q_squared():
    """order 2: covariance s⁻¹ (Q²)⁺ on the connected part, Q the graph Laplacian built here
    from the mask directly, with the same unit geometric-mean scaling as ICAR."""
    mask = np.ones((5, 6), bool)
    mask[0, :2] = mask[4, 5] = False
    g = grid_graph(mask)
    Q = np.zeros((g.n, g.n))
    for (r, c), i in np.ndenumerate(g.index):
        for dr, dc in ((0, 1), (1, 0)):
            rr, cc = r + dr, c + dc
            if i >= 0 and rr < mask.shape[0] and cc < mask.shape[1] and g.index[rr, cc] >= 0:
                j = g.index[rr, cc]
                Q[i, j] = Q[j, i] = -1.0
    Q[np.diag_indices(g.n)] = -Q.sum(axis=1)
    rough = []
    for order in (1, 2):
        pinv = np.linalg.pinv(np.linalg.matrix_power(Q, order), hermitian=True)
        want = pinv / np.exp(np.mean(np.log(np.diag(pinv))))
        got = g.eigvecs @ np.diag(g.structured_variance(order)) @ g.eigvecs.T
        np.testing.assert_allclose(got, want, atol=1e-10)
        # smoother: neighbours differ less, relative to the marginal variance
        i, j = g.edges.T
        d = np.diag(got)
        rough.append(np.mean((d[i] + d[j] - 2 * got[i, j]) / (0.5 * (d[i] + d[j]))))
    assert rough[1] < 0.6 * rough[0], rough  # 0.57 vs 1.18 on this mask


@pytest.mark.parametrize("centred", [True, False])
def test_bym2_prior_covariance(centred):
    """Prior draws of the field have covariance σ²(ρ Q⁺/s + (1-ρ) I)."""
    g = grid_graph(_mask())
    sigma, rho = 0.7, 0.6
    with pm.Model(coords={"pix": np.arange(g.n)}) as m:
        bym2_field("f", g, 2.0, sigma, rho, centred=centred, dims="pix")
        draws = pm.sample_prior_predictive(draws=4000, random_seed=3, var_names=["f"])
    f = draws.prior["f"].values.reshape(-1, g.n)
    expect = sigma**2 * (
        rho * g.eigvecs @ np.diag(g.structured_variance()) @ g.eigvecs.T + (1 - rho) * np.eye(g.n)
    )
    emp = np.cov(f.T)
    # Monte-Carlo sd of a covariance entry ≈ sqrt((Σii Σjj + Σij²)/N) ≤ sqrt(2/N)·max var
    tol = 5 * np.sqrt(2.0 / f.shape[0]) * np.max(np.diag(expect))
    assert np.max(np.abs(emp - expect)) < tol
    assert abs(f.mean() - 2.0) < 5 * np.sqrt(np.max(np.diag(expect)) / f.shape[0]) * 3
    assert m["f"].ndim == 1


def test_scaled_log_transform_leaves_the_prior_unchanged():
    """ScaledLog only moves NUTS's coordinates: same density of σ, log-Jacobian of z ↦ σ.

    (PyMC's HalfNormal log-density differs from scipy's by ~2e-9: rel 1e-8; a wrong Jacobian
    would be off by O(1).)
    """
    import pymc as pm
    from scipy import stats

    from bayes_sc.modeling.spatial import ScaledLog

    centre, scale = np.log(0.2), 0.03
    with pm.Model() as model:
        pm.HalfNormal("s", 0.5, default_transform=ScaledLog(centre, scale))
    z = np.array([-40.0, -1.0, 0.0, 2.5])
    sigma = np.exp(centre + scale * z)
    no_jac = model.compile_logp(jacobian=False)
    with_jac = model.compile_logp()
    for zi, si in zip(z, sigma, strict=True):
        want = stats.halfnorm(scale=0.5).logpdf(si)
        assert no_jac({"s_scaled_log__": zi}) == pytest.approx(want, rel=1e-8)
        assert with_jac({"s_scaled_log__": zi}) == pytest.approx(
            want + np.log(scale * si), rel=1e-8
        )
    # the initial point maps back to the value it was given
    with pm.Model() as m2:
        pm.HalfNormal("s", 0.5, initval=0.37, default_transform=ScaledLog(centre, scale))
    z0 = m2.initial_point()["s_scaled_log__"]
    assert np.exp(centre + scale * z0) == pytest.approx(0.37, rel=1e-12)


def test_field_scale_keeps_its_log_transform_without_hyper_scale():
    """A field's sd is sampled on the log scale unless ``hyper_scale`` asks for ScaledLog."""
    from bayes_sc.modeling.spatial import field

    prior = {"dist": "Normal", "mu": 0.0, "sigma": 1.0,
             "field": {"transform": "none", "centred": True, "sd_scale": 0.5,
                       "rho": {"dist": "Beta", "alpha": 2.0, "beta": 2.0}}}  # fmt: skip
    g = grid_graph(np.ones((3, 3), bool))
    for hyper, suffix in ((None, "_sd_log__"), (1 / 3, "_sd_scaled_log__")):
        with pm.Model() as model:
            field("f", prior, g, np.linspace(0, 1, g.n), dims=None, hyper_scale=hyper)
        assert any(v.name == "f" + suffix for v in model.value_vars), model.value_vars


def test_field_rho_prior_comes_from_the_preset(tmp_path):
    """ρ's Beta prior is the preset's ``[spatial] field_rho`` unless the field sets its own;
    a preset with neither is refused by name."""
    from pymc.logprob.basic import logp

    from bayes_sc.errors import InputError
    from bayes_sc.modeling.spatial import field
    from bayes_sc.presets import load_preset, preset_dir

    text = (preset_dir() / "cspbbr3.toml").read_text()
    marker = 'rho = { dist = "Beta", alpha = 4.0, beta = 1.0, '
    assert text.count(marker) == 1  # g_q's own ρ prior, the only field with one
    shipped = load_preset("cspbbr3")["priors"]["g_q"]["field"]["rho"]
    assert (shipped["alpha"], shipped["beta"]) == (4.0, 1.0)
    custom = text.replace(marker, 'rho = { dist = "Beta", alpha = 5.0, beta = 1.5, ')
    (tmp_path / "custom.toml").write_text(custom)
    preset = load_preset(tmp_path / "custom.toml")
    assert preset["priors"]["g_q"]["field"]["rho"]["alpha"] == 5.0
    assert preset["priors"]["a_mean"]["field"]["rho"] == preset["spatial"]["field_rho"]
    g = grid_graph(np.ones((3, 3), bool))
    for name, (a, b) in (("g_q", (5.0, 1.5)), ("a_mean", (2.0, 2.0))):
        with pm.Model() as model:
            field(name, preset["priors"][name], g, np.full(g.n, 1.0), dims=None)
        rv = model[f"{name}_rho"]
        for x in (0.2, 0.9):  # the model's density of ρ is exactly Beta(a, b)
            want = stats.beta(a, b).logpdf(x)
            assert float(logp(rv, x).eval()) == pytest.approx(want, rel=1e-6)
        assert model.initial_point()[f"{name}_rho_logodds__"] == pytest.approx(np.log(a / b))

    bare = text.replace("field_rho = {", "unused = {")
    (tmp_path / "bare.toml").write_text(bare)
    with pytest.raises(InputError, match="bare.toml.*field_rho"):
        load_preset(tmp_path / "bare.toml")
