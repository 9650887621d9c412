"""Structure of the X-ray model (no sampling): names, dims, shapes, parameterisation, logp."""

import numpy as np
import pytest
import xarray as xr

from bayes_sc.errors import InputError
from bayes_sc.inference.fit import attach_pixel_coords, parse_crop
from bayes_sc.modeling.xray import PIX, build_xray_model
from bayes_sc.presets import load_preset

SPEC7 = ("a1", "a2", "a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")


@pytest.fixture(scope="module")
def built(xray_inputs):
    data, preset, first, saxs, waxs = xray_inputs
    return data, preset, first, saxs, waxs, build_xray_model(data, preset, saxs, waxs, first)


def test_spec_variables_dims_and_shapes(built):
    data, preset, first, saxs, waxs, model = built
    named = model.named_vars
    for name in SPEC7:
        assert model.named_vars_to_dims[name] == (PIX,)
    assert named["a_AL"].ndim == 0 and named["L_nc"].ndim == 0
    assert len(model.coords[PIX]) == data.graph.n
    assert model["saxs_counts"].owner is not None
    obs = {v.name: v for v in model.observed_RVs}
    assert set(obs) == {"saxs_counts", "waxs_counts"}
    ip = model.initial_point()
    assert np.isfinite(model.compile_logp()(ip))
    shapes = {k: v.shape for k, v in ip.items()}
    assert shapes["log_I_saxs_u"] == (data.graph.n, len(preset["xray"]["saxs_reflections"]))


def test_parameterisation_follows_the_preset(built):
    *_, model = built
    free = {v.name for v in model.free_RVs}
    # fields pinned by their pixel's own peaks are centred; g_q (carried by the prior) is not
    for name in ("a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "I_AL"):
        assert f"{name}_field_coef_u" in free
    assert "g_q_field_z" in free


def test_sampling_units_leave_the_prior_unchanged(built):
    """Parameters sampled in a preset unit (``*_u``) keep their prior: a_AL ~ N(μ, σ) in nm."""
    from scipy.stats import norm

    data, preset, first, saxs, waxs, model = built
    pr = preset["priors"]["a_AL"]
    assert "a_AL_u" in {v.name for v in model.free_RVs}
    ip = model.initial_point()
    lp = model.compile_fn(model.logp(vars=[model["a_AL_u"]], jacobian=False),
                          inputs=model.value_vars, on_unused_input="ignore")  # fmt: skip
    u = ip["a_AL_u"]
    unit = pr["sample_unit"]
    # density of a_AL = unit·u: N(unit·u; μ, σ) = N(u; μ/unit, σ/unit) / unit
    want = norm(pr["mu"], pr["sigma"]).logpdf(unit * u) + np.log(unit)
    assert lp(ip) == pytest.approx(want, rel=1e-7)  # μ/unit, σ/unit rounding


def test_windows_hold_the_peaks(built):
    data, preset, first, saxs, waxs, _ = built
    # every pixel has SAXS and WAXS windows; windows hold most SAXS-region counts
    assert np.unique(saxs.pix).size == data.graph.n and np.unique(waxs.pix).size == data.graph.n
    saxs_total = data.counts[data.frames][:, data.bins["region"] == 0].sum()
    assert saxs.counts.sum() > 0.8 * saxs_total
    assert saxs.peak.max() < 2 * len(preset["xray"]["saxs_reflections"])


def test_pixel_coords_are_attached_and_crop_parsed():
    tree = xr.DataTree.from_dict(
        {"posterior": xr.Dataset({"tau": (("chain", "draw", PIX), np.zeros((1, 2, 3)))})}
    )
    tree = attach_pixel_coords(tree, PIX, {"xray_row": [0, 1, 2], "xray_edge_um": [0.5, 1.0, 0.5]})
    assert list(tree.posterior["xray_row"].values) == [0, 1, 2]
    assert parse_crop("2:5,1:4") == (slice(2, 5), slice(1, 4))
    with pytest.raises(InputError, match="--crop"):
        parse_crop("2-5")


def test_a_preset_whose_ranges_exclude_the_peaks_is_refused(
    built, small_reduced, tmp_path, monkeypatch, capsys
):
    """A preset that cannot reach the data: a clear error naming it, no posterior written."""
    import tomllib

    from bayes_sc.cli import main
    from bayes_sc.inference.fit import check_prior_ranges

    data, preset, first, *_ = built
    check_prior_ranges(first, preset)  # the right preset passes
    text = open(preset["_path"]).read()
    assert "range = [0.555, 0.595]" in text
    bad = tmp_path / "wrong_al.toml"
    bad.write_text(text.replace("range = [0.555, 0.595]", "range = [0.60, 0.64]"))

    with pytest.raises(InputError, match=r"wrong_al\.toml.*prior range of a_AL.*excludes"):
        check_prior_ranges(first, load_preset(bad))
    assert tomllib.loads(bad.read_text())["priors"]["a_AL"]["range"] == [0.60, 0.64]
    # through the CLI: exit 2, one line naming the preset, nothing written
    out = tmp_path / "post.nc"
    import bayes_sc.inference.fit as fit_mod

    monkeypatch.setattr(fit_mod, "load_preset", lambda name: load_preset(bad))
    assert main(["fit", str(small_reduced), "-o", str(out), "--quiet"]) == 2
    assert not out.exists()
    assert "wrong_al.toml" in capsys.readouterr().err


def test_padded_layout_places_each_element_once(rng):
    from bayes_sc.modeling.windows import Windows, padded_layout

    pix, peak = rng.integers(0, 5, 400), rng.integers(0, 6, 400)
    win = Windows(pix, np.arange(400), peak, rng.poisson(3, 400), np.zeros((5, 6)),
                  np.zeros((5, 6)), (1.0, 1.0))  # fmt: skip
    lay = padded_layout(win)
    row, slot = lay.row, lay.slot
    assert np.unique(row * lay.L + slot).size == 400  # no two elements share a cell
    assert np.array_equal(lay.pix[row], pix) and np.array_equal(lay.peak[row], peak)
    assert lay.L == np.bincount(pix * 6 + peak).max() and lay.mask.sum() == 400
    # slots follow the elements' order within their window
    for r in range(lay.pix.size):
        assert np.array_equal(slot[row == r], np.arange((row == r).sum()))
    # rows by block, then by (pixel, peak); cells row by row hold the elements in
    # (row, slot) order, in the dense layout and in the blocks alike
    key = lay.pix * 6 + lay.peak
    block = np.repeat(np.arange(len(lay.blocks)), [b - a for a, b, _ in lay.blocks])
    assert np.array_equal(np.lexsort((key, block)), np.arange(key.size))
    in_order = win.counts[np.lexsort((slot, row))]
    np.testing.assert_array_equal(lay.dense(win.counts, -1)[lay.mask], in_order)
    blocks = lay.block_dense(win.counts, -1)
    masks = lay.block_dense(True, False)
    joined = np.concatenate([b[m] for b, m in zip(blocks, masks, strict=True)])
    np.testing.assert_array_equal(joined, in_order)


def test_padded_layout_blocks_pad_the_fewest_cells():
    """Windows of 10, 10, 10, 50 and 51 bins: three blocks pad to 10 and 51 or less; the best
    split (brute force over every split of the sorted lengths) is found."""
    import itertools

    from bayes_sc.modeling.windows import Windows, padded_layout

    sizes = np.array([10, 10, 10, 50, 51, 3, 200, 199])
    pix = np.repeat(np.arange(sizes.size), sizes)
    win = Windows(pix, np.arange(pix.size), np.zeros_like(pix), np.ones_like(pix),
                  np.zeros((sizes.size, 1)), np.zeros((sizes.size, 1)), (1.0, 1.0))  # fmt: skip
    v = np.unique(sizes)
    for k in (1, 2, 3, 4):
        lay = padded_layout(win, max_blocks=k)
        cells = sum((b - a) * width for a, b, width in lay.blocks)
        splits = [(0, *c, v.size) for n in range(k)
                  for c in itertools.combinations(range(1, v.size), n)]  # fmt: skip
        best = min(sum(((v[s:e, None] == sizes).sum() * v[e - 1])
                       for s, e in itertools.pairwise(cut)) for cut in splits)  # fmt: skip
        assert len(lay.blocks) <= k and cells == best
        for a, b, width in lay.blocks:  # each block padded to its own longest window
            assert width == np.bincount(lay.row)[a:b].max()
    assert padded_layout(win, max_blocks=1).blocks == ((0, 8, 200),)


def test_exact_expected_counts_match_the_per_element_forward_model(built, rng):
    """The dense-layout expected counts of every window element equal the NumPy forward model
    evaluated element by element (substrate template × scale + flat × weight + its own
    peak), and the observed counts are the windows' counts, each once."""
    import pytensor.tensor as pt

    from bayes_sc.modeling.windows import padded_layout
    from bayes_sc.modeling.xray import _expected_counts
    from bayes_sc.physics import binned_peak_counts

    data, preset, first, saxs, waxs, _ = built
    bins = data.bins
    bg = rng.uniform(0.0, 2.0, bins["weight"].size)
    for win in (saxs, waxs):
        shape = win.centre_q.shape
        par = {"q0": win.centre_q + rng.normal(0, 0.01, shape),
               "phi0": win.centre_phi + rng.normal(0, 1.0, shape),
               "sq": rng.uniform(0.02, 0.1, shape), "sphi": rng.uniform(1.0, 8.0, shape),
               "i0": rng.uniform(1e3, 1e4, shape)}  # fmt: skip
        lay = padded_layout(win)
        n_win = lay.pix.size  # one background per window (layout row)
        scale, flat = rng.uniform(0.5, 1.5, n_win), rng.uniform(0.0, 0.1, n_win)
        mu, y = _expected_counts(win, bins, bg, pt.as_tensor(scale), pt.as_tensor(flat),
                                 *(pt.as_tensor(par[k]) for k in par))  # fmt: skip
        m, k, b = win.pix, win.peak, win.bin
        w = lay.row  # the window of each element, numbered as the layout's rows
        assert np.array_equal(lay.pix[w], m) and np.array_equal(lay.peak[w], k)
        want = scale[w] * bg[b] + flat[w] * bins["weight"][b] + binned_peak_counts(
            bins["weight"][b], bins["q_wmean"][b], bins["phi_wmean"][b], bins["var_q"][b],
            bins["var_phi"][b], bins["cov_qphi"][b], *(par[key][m, k] for key in par))  # fmt: skip
        order = np.lexsort((np.arange(win.size), w))  # window by window, elements in order
        np.testing.assert_allclose(mu.eval(), want[order], rtol=1e-12)
        assert np.array_equal(y, win.counts[order])


def test_exact_background_belongs_to_each_window_or_each_pixel(built):
    """By default every (pixel, peak) window has its own template scale and flat density, as
    in the summaries' window fits; ``background_per = "pixel"`` shares one scale per pixel
    and one flat per pixel and region. Both start at a finite log density."""
    from bayes_sc.modeling.windows import padded_layout

    data, preset, first, saxs, waxs, model = built
    assert preset["xray"]["background_per"] == "window"
    free = {v.name for v in model.free_RVs}
    for region, win in (("saxs", saxs), ("waxs", waxs)):
        n_win = padded_layout(win).pix.size
        assert n_win == np.unique(win.pix * win.centre_q.shape[1] + win.peak).size
        # sampled as (log total, log flat/template ratio): see modeling/background.py
        split = f"{region}_background_scale_split"
        assert split in free
        assert model.named_vars_to_dims[split] == (f"{region}_window", "background_param")
        for name in (f"{region}_background_scale", f"{region}_flat_background"):
            assert name in {v.name for v in model.deterministics}
            assert model.named_vars_to_dims[name] == (f"{region}_window",)
        assert len(model.coords[f"{region}_window"]) == n_win
    assert not {"background_scale", "flat_saxs", "flat_waxs"} & free
    per_pixel = {**preset, "xray": {**preset["xray"], "background_per": "pixel"}}
    alt = build_xray_model(data, per_pixel, saxs, waxs, first)
    free = {v.name for v in alt.free_RVs}
    assert {"background_scale", "flat_saxs", "flat_waxs"} <= free
    assert not {"saxs_background_scale", "waxs_flat_background"} & free
    for name in ("background_scale", "flat_saxs", "flat_waxs"):
        assert alt.named_vars_to_dims[name] == (PIX,)
    for m in (model, alt):
        assert np.isfinite(m.compile_logp()(m.initial_point()))


def test_preset_background_structure_is_checked(tmp_path):
    from bayes_sc.presets import preset_dir

    text = (preset_dir() / "cspbbr2cl.toml").read_text()
    bad = tmp_path / "bad_background.toml"

    def rejected(line, wrongs, match):
        """Each replacement of the preset's ``line`` is refused, naming ``match``."""
        assert line in text
        for wrong in wrongs:
            bad.write_text(text.replace(line, wrong))
            with pytest.raises(InputError, match=match):
                load_preset(bad)

    rejected('background_per = "window"', ['background_per = "frame"'], "background_per")
    merge = "unsummarised_merge = { saxs = [1, 1], waxs = [2, 3] }"
    rejected(merge, [f"unsummarised_merge = {{ saxs = [1, 1], {w} }}"
                     for w in ("waxs = [0, 3]", "waxs = [2]", "waxs = [2.5, 3]")],
             "unsummarised_merge.waxs")  # fmt: skip
    bad.write_text(text.replace(merge, ""))  # absent: nothing merged
    assert load_preset(bad)["xray"]["unsummarised_merge"] == {"saxs": [1, 1], "waxs": [1, 1]}
    ta = "target_accept = 0.8"
    assert load_preset("cspbbr2cl")["xray"]["target_accept"] == 0.8
    rejected(ta, [f"target_accept = {w}" for w in ("1.0", "0.0", '"high"')], "target_accept")
    bad.write_text(text.replace(ta, ""))  # absent: 0.9
    assert load_preset(bad)["xray"]["target_accept"] == 0.9
    rejected("small_scan_pixels = 100", [f"small_scan_pixels = {w}" for w in ("-1", "2.5", '"n"')],
             "small_scan_pixels")  # fmt: skip
    rejected("target_accept_small_scan = 0.9", ["target_accept_small_scan = 1"],
             "target_accept_small_scan")  # fmt: skip


def test_merged_window_bins_keep_counts_weights_and_the_peak_model(xray_inputs):
    """Merging a window's bins (the fast model's exact windows) sums counts and weights
    within each window, keeps the weighted centroid, and the merged bins' second-order peak
    model matches the sum of the original bins' (WAXS peak widths of the presets' scale)."""
    from bayes_sc.modeling.windows import merge_window_bins, padded_layout
    from bayes_sc.physics import binned_peak_counts

    data, preset, first, saxs, waxs = xray_inputs
    bins, bg = data.bins, data.background
    merged, mb, inv = merge_window_bins(waxs, bins, bg, (2, 3))
    assert merged.size < waxs.size / 4  # most cells hold 6 bins
    # no merged bin mixes windows
    assert np.all(merged.pix[inv] == waxs.pix) and np.all(merged.peak[inv] == waxs.peak)
    n_win = padded_layout(waxs).pix.size
    n_peak = waxs.centre_q.shape[1]
    key = waxs.pix * n_peak + waxs.peak
    mkey = merged.pix * n_peak + merged.peak
    for a, b in ((waxs.counts, merged.counts), (bins["weight"][waxs.bin], mb["weight"]),
                 (bg[waxs.bin], mb["background"])):  # fmt: skip
        per_a = np.bincount(np.unique(key, return_inverse=True)[1], weights=a)
        per_b = np.bincount(np.unique(mkey, return_inverse=True)[1], weights=b)
        assert per_a.size == per_b.size == n_win
        np.testing.assert_allclose(per_b, per_a, rtol=1e-12)
    w = bins["weight"][waxs.bin]
    np.testing.assert_allclose(np.bincount(inv, w * bins["q_wmean"][waxs.bin]) / mb["weight"],
                               mb["q_wmean"], rtol=1e-12)  # fmt: skip
    # a peak at every window's centre, sd 0.35 nm^-1 x 6 degree: per merged bin, the merged
    # second-order model vs the sum of its bins' (the reduction's own approximation)
    c = (waxs.centre_q[waxs.pix, waxs.peak], waxs.centre_phi[waxs.pix, waxs.peak])
    fine = binned_peak_counts(w, bins["q_wmean"][waxs.bin], bins["phi_wmean"][waxs.bin],
                              bins["var_q"][waxs.bin], bins["var_phi"][waxs.bin],
                              bins["cov_qphi"][waxs.bin], *c, 0.35, 6.0, 1.0)  # fmt: skip
    cm = (merged.centre_q[merged.pix, merged.peak], merged.centre_phi[merged.pix, merged.peak])
    coarse = binned_peak_counts(mb["weight"], mb["q_wmean"], mb["phi_wmean"], mb["var_q"],
                                mb["var_phi"], mb["cov_qphi"], *cm, 0.35, 6.0, 1.0)  # fmt: skip
    summed = np.bincount(inv, fine)
    assert np.max(np.abs(coarse - summed)) < 2e-3 * summed.max()
    # with factor (1, 1) nothing changes
    same, sb, _ = merge_window_bins(waxs, bins, bg, (1, 1))
    assert same.size == waxs.size and np.array_equal(np.sort(same.counts), np.sort(waxs.counts))


def test_exact_likelihood_gathers_per_element_once_per_region(built):
    """Each window's peak broadcasts over its bins: the gradient holds one per-element gather
    (and its scatter) per region, not one per peak parameter, whose scatter-adds onto a few
    hundred peaks serialise on a GPU (issue 5's GPU measurement)."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    data, preset, first, saxs, waxs, model = built
    logp = get_jaxified_logp(model)
    ip = model.initial_point()
    jaxpr = jax.make_jaxpr(jax.value_and_grad(logp))([ip[v.name] for v in model.value_vars])
    from bayes_sc.modeling.windows import padded_layout

    # per block of windows, the padding mask's gather and its scatter: a per-parameter gather
    # lifted to the elements would add more of the same sizes
    per_block = [int(m.sum()) for win in (saxs, waxs)
                 for m in padded_layout(win).block_dense(True, False)]  # fmt: skip
    sizes = [e.invars[1].aval.shape[0] for e in jaxpr.jaxpr.eqns
             if e.primitive.name in ("gather", "scatter-add")]  # fmt: skip
    assert sorted(n for n in sizes if n in per_block) == sorted(per_block * 2)
