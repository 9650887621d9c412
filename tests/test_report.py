"""``bayes-sc report``: files, tables, verdicts, figures, bad input and atomic output.

Posteriors come from :func:`bayes_sc.simulate.posteriors.synthetic_crystal` (calibrated draws,
no NUTS), with the sampler statistics a real fit records added here; the regression file is
built by hand with the groups ``regress`` writes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_sc.cli import main
from bayes_sc.errors import InputError
from bayes_sc.presets import load_preset
from bayes_sc.report import checks, maps, profiles, tables, write_report
from bayes_sc.report.markdown import verdict_text
from bayes_sc.simulate.posteriors import synthetic_crystal

matplotlib.use("Agg")
DRAWS = 400  # iid draws per chain: bulk and tail ESS well above 400 on 2 chains
FIGURES_XRAY = [
    "map_a_mean",
    "map_delta_psi",
    "map_g_q",
    "profiles_xray",
    "rank",
    "trace",
    "energy",
]
SUMMARY_COLUMNS = [
    "variable",
    "mean",
    "sd",
    "eti90_lb",
    "eti90_ub",
    "ess_bulk",
    "ess_tail",
    "r_hat",
    "row",
    "col",
    "x_um",
    "y_um",
    "edge_um",
]


def _with_sample_stats(path: Path, rng, out: Path, divergences: int = 0) -> Path:
    """A copy of ``path`` with sample_stats (diverging, energy) and a sampling time."""
    tree = xr.open_datatree(path).load()
    n = tree["posterior"].sizes
    shape = (n["chain"], n["draw"])
    div = np.zeros(shape, bool)
    div.flat[:divergences] = True
    energy = 0.3 * rng.standard_normal(shape).cumsum(axis=1) + rng.standard_normal(shape)
    tree["sample_stats"] = xr.DataTree(
        xr.Dataset({"diverging": (("chain", "draw"), div), "energy": (("chain", "draw"), energy)})
    )
    tree.attrs["sampling_time_s"] = 12.5
    tree.to_netcdf(out)
    return out


def _with_predictive(path: Path, rng) -> None:
    """Add FLIM-like observed decays and their posterior predictive to ``path`` (in place)."""
    tree = xr.open_datatree(path).load()
    post = tree["posterior"].to_dataset()
    n_pix, n_t = post.sizes["flim_pixel"], 30
    t = np.arange(n_t)
    rate = 200 * np.exp(-t[None, :] / 5.0) * rng.uniform(0.5, 1.5, (n_pix, 1)) + 1.0
    coords = {k: post[k] for k in post.coords if post[k].dims == ("flim_pixel",)}
    obs = xr.Dataset({"flim_counts": (("flim_pixel", "flim_time"), rng.poisson(rate))}, coords)
    pp = rng.poisson(rate, (2, 50, n_pix, n_t))
    tree["observed_data"] = xr.DataTree(obs)
    tree["posterior_predictive"] = xr.DataTree(
        xr.Dataset({"flim_counts": (("chain", "draw", "flim_pixel", "flim_time"), pp)})
    )
    tree.to_netcdf(path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


@pytest.fixture(scope="module")
def posteriors(tmp_path_factory):
    """Synthetic X-ray, FLIM (with predictive checks) and PL posteriors with sample_stats."""
    out = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(5)
    paths = synthetic_crystal(
        out / "raw", load_preset("cspbbr2cl"), rng, name="R", scan=(8, 8), draws=DRAWS
    )
    res = {m: _with_sample_stats(paths[m], rng, out / f"{m}.nc") for m in ("xray", "flim", "pl")}
    _with_predictive(res["flim"], rng)
    return res


@pytest.fixture(scope="module")
def xray_report(posteriors):
    return write_report(posteriors["xray"])


def _regression_tree(rng) -> xr.DataTree:
    """A regression.nc as ``regress`` writes it (groups, dims, attrs), with known slopes."""
    resp, cov = ["blueshift", "tau"], ["a_mean", "delta_psi", "g_q"]
    c, d = 2, 300
    beta = np.array([[-4.0, 0.5, 2.0], [0.1, -0.01, 0.0]])[None, None] + 0.05 * rng.standard_normal(
        (c, d, 2, 3)
    )
    post = xr.Dataset(
        {
            "beta": (("chain", "draw", "response", "covariate"), beta),
            "beta_std": (("chain", "draw", "response", "covariate"), beta / 2),
            "intercept": (("chain", "draw", "response"), 1 + 0.1 * rng.standard_normal((c, d, 2))),
            "sigma": (("chain", "draw", "response"), 1 + 0.1 * rng.random((c, d, 2))),
        },
        coords={"chain": np.arange(c), "draw": np.arange(d), "response": resp, "covariate": cov},
    )
    e = np.linspace(0.2, 3.0, 20)
    const = {}
    for r in resp:
        const[f"{r}_edge_um"] = (f"{r}_unit", e)
        const[f"{r}_mean"] = (f"{r}_unit", np.exp(-e) + 0.05 * rng.standard_normal(e.size))
        const[f"{r}_sd"] = (f"{r}_unit", np.full(e.size, 0.05))
        const[f"{r}_crystal"] = (f"{r}_unit", np.zeros(e.size, int))
    grid = np.linspace(0.2, 3.0, 50)
    prof = {}
    for k in cov:
        for part, off in (("mean", 0.0), ("lower", -0.1), ("upper", 0.1)):
            prof[f"{k}_{part}_0"] = xr.DataArray(
                1 - np.exp(-grid) + off, dims="edge_0", coords={"edge_0": grid}
            )
    profs = xr.Dataset(prof, attrs={"crystals": json.dumps(["R"]), "prob": 0.9})
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((c, d), bool)),
            "energy": (("chain", "draw"), rng.standard_normal((c, d))),
        }
    )
    tree = xr.DataTree.from_dict(
        {
            "posterior": post,
            "sample_stats": stats,
            "constant_data": xr.Dataset(const),
            "profiles": profs,
        }
    )
    warning = "tau: the data cannot fully separate the slopes of a_mean and delta_psi"
    tree.attrs.update(
        model="regression",
        crystals=json.dumps(["R"]),
        warnings=json.dumps([warning]),
        collinearity=json.dumps({"tau": {"condition_number": 812.0, "n_units": 20}}),
    )
    return tree


def _links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", md)


# --- whole reports ------------------------------------------------------------------------------


def test_xray_report_writes_every_file_and_links_them(posteriors, xray_report):
    out = xray_report.parent
    assert xray_report == posteriors["xray"].parent / "xray_report" / "report.md"
    for name in FIGURES_XRAY:
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000, name
    md = xray_report.read_text()
    links = set(_links(md))
    assert {"summary.csv", "diagnostics.json"} <= links
    assert {f"figures/{p.name}" for p in (out / "figures").iterdir()} <= links
    assert all((out / link).exists() for link in links)
    assert "**PASS**" in md and "90 % interval" in md
    assert "no `posterior_predictive` group" in md  # PPC skipped with a note
    assert "crystal average" in md and "`a_mean` [nm]" in md
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".xray_report")]


def test_summary_csv_has_arviz_columns_one_row_per_pixel_and_readable_labels(
    posteriors, xray_report
):
    df = pd.read_csv(xray_report.parent / "summary.csv", index_col=0)
    post = xr.open_datatree(posteriors["xray"])["posterior"].to_dataset()
    n = post.sizes["xray_pixel"]
    assert list(df.columns[: len(SUMMARY_COLUMNS) - 5]) == SUMMARY_COLUMNS[:-5]
    assert set(SUMMARY_COLUMNS) <= set(df.columns)
    assert len(df) == 3 * n and sorted(set(df["variable"])) == ["a_mean", "delta_psi", "g_q"]
    r, c = int(post["xray_row"][5]), int(post["xray_col"][5])
    row = df.loc[f"delta_psi[r{r}c{c}]"]
    assert (row["row"], row["col"]) == (r, c)
    line = next(
        t
        for t in (xray_report.parent / "summary.csv").read_text().splitlines()
        if t.startswith(f"delta_psi[r{r}c{c}],")
    )
    assert f",{r},{c}," in line  # grid indices written as integers
    assert row["edge_um"] == pytest.approx(float(post["xray_edge_um"][5]))
    draws = post["delta_psi"].isel(xray_pixel=5).values.ravel()
    assert row["mean"] == pytest.approx(draws.mean())
    assert row["eti90_lb"] == pytest.approx(np.quantile(draws, 0.05), rel=1e-3)


def test_diagnostics_json_keys_and_pass(xray_report):
    diag = json.loads((xray_report.parent / "diagnostics.json").read_text())
    for key in (
        "max_r_hat",
        "min_ess_bulk",
        "min_ess_tail",
        "divergences",
        "bfmi",
        "sampling_time_s",
        "checks",
        "pass",
        "failing_variables",
        "thresholds",
    ):
        assert key in diag, key
    assert diag["pass"] is True and diag["failing_variables"] == []
    assert diag["max_r_hat"] <= 1.01 and diag["min_ess_bulk"] >= 400
    assert diag["divergences"] == 0 and len(diag["bfmi"]) == 2
    assert diag["sampling_time_s"] == 12.5


def test_verdict_fails_on_a_shifted_chain_and_on_divergences(posteriors):
    tree = xr.open_datatree(posteriors["xray"]).load()
    post = tree["posterior"].to_dataset()
    shifted = post["g_q"].values.copy()
    shifted[1, :, 3] += 5 * shifted[:, :, 3].std()  # chain 1 of one pixel moved away
    post["g_q"] = (post["g_q"].dims, shifted)
    tree["posterior"] = xr.DataTree(post)
    stats = tree["sample_stats"].to_dataset()
    stats["diverging"].values[0, :3] = True
    tree["sample_stats"] = xr.DataTree(stats)
    diag = tables.diagnostics(tree, tables.summary_table(post))
    assert diag["pass"] is False
    assert diag["checks"]["r_hat"]["pass"] is False and diag["max_r_hat"] > 1.5
    label = f"g_q[r{int(post['xray_row'][3])}c{int(post['xray_col'][3])}]"
    assert diag["max_r_hat_at"] == label and diag["checks"]["r_hat"]["failing"] == [label]
    assert diag["failing_variables"] == ["g_q"]
    assert diag["divergences"] == 3 and diag["checks"]["divergences"]["pass"] is False
    text = verdict_text(diag)
    assert text.startswith("**FAIL**") and "`g_q`" in text and "3 divergences" in text
    assert tables.worst_mixing(tables.summary_table(post), 2)[0] == label


def test_flim_report_with_predictive_checks(posteriors, tmp_path):
    import h5py

    with h5py.File(tmp_path / "reduced.h5", "w") as f:  # a reduced.h5 without /flim
        f.create_group("xray")
    md = write_report(
        posteriors["flim"],
        posteriors["flim"].parent / "flim_out",
        ci_prob=0.8,
        reduced=tmp_path / "reduced.h5",
    )
    out = md.parent
    assert "no least-squares flim baseline from reduced.h5" in md.read_text()
    for name in ("map_tau", "profiles_flim", "ppc_flim_counts", "energy"):
        assert (out / "figures" / f"{name}.png").exists(), name
    assert "eti80_lb" in pd.read_csv(out / "summary.csv").columns
    assert "80 % interval" in md.read_text()


def test_regression_report_beta_table_forest_profiles_and_warnings(tmp_path, rng):
    path = tmp_path / "regression.nc"
    _regression_tree(rng).to_netcdf(path)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # as a Dask worker thread would call it
        md = pool.submit(write_report, path).result().read_text()
    out = tmp_path / "regression_report"
    for name in ("forest_beta", "profiles", "rank", "trace", "energy"):
        assert (out / "figures" / f"{name}.png").exists(), name
    assert "| blueshift | a_mean | -4" in md and "meV/nm" in md
    assert "cannot fully separate the slopes of a_mean and delta_psi" in md
    assert "condition number 812" in md
    assert len(pd.read_csv(out / "summary.csv")) == 6 + 6 + 2 + 2


def test_cli_report_replaces_a_previous_report(posteriors, tmp_path, capsys):
    out = tmp_path / "pl_report"
    out.mkdir()
    (out / "report.md").write_text("# an older report\n")
    (out / "stale.png").write_text("from the previous report")
    assert main(["report", str(posteriors["pl"]), "-o", str(out), "--quiet"]) == 0
    assert f"wrote {out / 'report.md'}" in capsys.readouterr().out
    assert not (out / "stale.png").exists()  # replaced as a whole
    assert "pl posterior" in (out / "report.md").read_text()
    for name in ("map_E_peak", "map_blueshift", "profiles_pl"):
        assert (out / "figures" / f"{name}.png").exists(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pl_report"]  # no temporary left


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("POSTERIOR", "-o DIR", "--ci-prob", "--reduced"):
        assert word in text


# --- bad input: one clear message, nothing written ----------------------------------------------


def _bad_inputs(tmp: Path, posteriors) -> list[tuple[list, str]]:
    (tmp / "text.nc").write_text("not a netCDF file\n")
    xr.Dataset({"x": ("a", np.arange(3.0))}).to_netcdf(tmp / "flat.nc")
    tree = xr.open_datatree(posteriors["pl"]).load()
    tree.attrs["model"] = "spectroscopy"
    tree.to_netcdf(tmp / "unknown.nc")
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "notes.txt").write_text("keep me")
    (tmp / "afile").write_text("")
    pl = posteriors["pl"]
    return [
        ([tmp / "missing.nc"], "file not found"),
        ([tmp / "text.nc"], "not a readable netCDF/HDF5 DataTree"),
        ([tmp / "flat.nc"], "no 'posterior' group"),
        ([tmp / "unknown.nc"], "unknown model 'spectroscopy'"),
        ([pl, tmp / "foreign"], "holds other files (no report.md)"),
        ([pl, tmp / "afile"], "exists and is not a folder"),
        ([pl, pl.parent], "would replace the input"),
    ]


def test_bad_input_gives_one_clear_error_and_writes_nothing(posteriors, tmp_path, capsys):
    cases = _bad_inputs(tmp_path, posteriors)
    before = sorted(tmp_path.rglob("*"))
    before_src = sorted(posteriors["pl"].parent.iterdir())
    for args, message in cases:
        with pytest.raises(InputError, match=re.escape(message)):
            write_report(*args)
        argv = ["report", str(args[0])] + (["-o", str(args[1])] if len(args) > 1 else [])
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("bayes-sc report: error:") and message in err and "\n" not in err
    assert sorted(tmp_path.rglob("*")) == before
    assert sorted(posteriors["pl"].parent.iterdir()) == before_src
    with pytest.raises(InputError, match="ci_prob"):
        write_report(posteriors["pl"], tmp_path / "x", ci_prob=1.5)
    assert main(["report", str(posteriors["pl"]), "--ci-prob", "0"]) == 2
    assert not (tmp_path / "x").exists()


# --- figures: labels, units, colour bars, no overlapping text ------------------------------------


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts (titles, axis labels, tick labels, legends) whose boxes
    intersect, and texts cut off by the figure's edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in [a for a in fig.axes if a.get_visible()]:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for axis, k in ((ax.xaxis, 0), (ax.yaxis, 1)):  # tick labels drawn: inside the limits
            lo, hi = sorted(axis.get_view_interval())
            texts += [t for t in axis.get_ticklabels() if lo <= t.get_position()[k] <= hi]
    for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        texts += legend.get_texts()
    boxes = [
        (t.get_text(), t.get_window_extent(renderer))
        for t in texts
        if t.get_visible() and t.get_text()
    ]
    edge = fig.bbox
    clipped = [
        ("outside the figure", a)
        for a, b in boxes
        if b.x0 < -1 or b.y0 < -1 or b.x1 > edge.x1 + 1 or b.y1 > edge.y1 + 1
    ]
    return clipped + [
        (a, b)
        for i, (a, ba) in enumerate(boxes)
        for b, bb in boxes[i + 1 :]
        if ba.overlaps(bb) and ba.width > 0 and bb.width > 0
    ]


def _colourbars(fig):
    return [ax for ax in fig.axes if hasattr(ax, "_colorbar")]


def test_grid_map_has_physical_axes_unit_colour_bars_outline_and_blank_outside(posteriors):
    post = xr.open_datatree(posteriors["xray"])["posterior"].to_dataset()
    fig = maps.grid_map_figure(post, "a_mean", "xray_pixel", "xray")
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 2
    for ax in image_axes:
        assert ax.get_xlabel() == "x [µm]" and ax.collections  # the crystal outline
        img = ax.images[0].get_array()
        assert np.ma.count_masked(img) + np.isnan(img.filled(np.nan)).sum() > 0
    assert image_axes[0].get_ylabel() == "y [µm]"
    bars = _colourbars(fig)
    assert len(bars) == 2 and all("[nm]" in b.get_ylabel() for b in bars)
    assert "a_mean" in fig._suptitle.get_text() and "[nm]" in fig._suptitle.get_text()
    assert fig.get_layout_engine() is not None
    assert _overlaps(fig) == []
    # Pixel positions: the image's cell at (row, col) holds that pixel's posterior mean.
    grid = maps.pixel_grid(post, "xray")
    mean = post["a_mean"].mean(("chain", "draw")).values
    img = image_axes[0].images[0].get_array().filled(np.nan)
    np.testing.assert_allclose(img[grid.rows - grid.r0, grid.cols - grid.c0], mean)
    assert grid.dx == pytest.approx(0.5) and grid.dy == pytest.approx(0.5)


def test_point_map_and_profiles_label_units_and_baseline(posteriors):
    post = xr.open_datatree(posteriors["pl"])["posterior"].to_dataset()
    fig = maps.point_map_figure(post, "blueshift", outline_um=np.array([[0, 0], [4, 0], [2, 3]]))
    assert [b.get_ylabel() for b in _colourbars(fig)] == [
        r"$\Delta E$ [meV]",
        r"width of $\Delta E$ [meV]",
    ]
    assert fig.axes[0].yaxis_inverted() and _overlaps(fig) == []
    vmin, vmax = fig.axes[0].collections[0].get_clim()
    assert vmin == pytest.approx(-vmax)  # signed: diverging colours centred on zero
    base = {"E_peak": np.full(post.sizes["pl_point"], 2.5)}
    fig = profiles.profile_figure(post, ["E_peak", "blueshift"], "pl_point", "pl", baseline=base)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_xlabel() for ax in axes] == ["edge distance [µm]"] * 2
    assert [ax.get_ylabel() for ax in axes] == [r"$E_\mathrm{peak}$ [eV]", r"$\Delta E$ [meV]"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("least squares" in t for t in labels)
    assert _overlaps(fig) == []
    flim = xr.open_datatree(posteriors["flim"])["posterior"].to_dataset()
    one = profiles.profile_figure(flim, ["tau"], "flim_pixel", "flim", title="FLIM fields")
    assert _overlaps(one) == []  # a single panel keeps its legend inside the figure


def test_binned_band_averages_pixels_per_edge_distance():
    edge = np.array([0.5, 0.5, 1.0, 1.0, 1.5])
    draws = np.tile([1.0, 3.0, 5.0, 7.0, 9.0], (100, 1))
    band = profiles.binned_band(draws, edge)
    np.testing.assert_allclose(band["edge_um"], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(band["mean"], [2.0, 6.0, 9.0])
    np.testing.assert_allclose(band["lower"], band["upper"])
    np.testing.assert_array_equal(band["n"], [2, 2, 1])
    many = profiles.edge_bins(np.linspace(0, 5, 100))
    assert np.unique(many).size == profiles.N_BINS


def test_ppc_figure_shows_observed_against_predictive_band(posteriors):
    tree = xr.open_datatree(posteriors["flim"]).load()
    assert checks.ppc_variables(tree) == ["flim_counts"]
    fig = checks.ppc_figure(tree, "flim_counts")
    panels = [ax for ax in fig.axes if ax.get_title().startswith("pixel r")]
    assert len(panels) == checks.MAX_PPC_UNITS
    assert panels[0].get_ylabel() == "counts"
    assert all(ax.get_xlabel() == "time bin (merged) [index]" for ax in panels)


def test_sampler_check_figures_are_laid_out_without_overlaps(posteriors):
    tree = xr.open_datatree(posteriors["xray"]).load()
    post = tree["posterior"].to_dataset()
    labelled, _ = tables.labelled_posterior(post)
    worst = tables.worst_mixing(tables.summary_table(post), 3)
    assert len(worst) == 3 and all(re.fullmatch(r"\w+\[r\d+c\d+\]", w) for w in worst)
    import matplotlib.pyplot as plt

    for fig in (
        checks.rank_figure(labelled, worst),
        checks.trace_figure(labelled, worst),
        checks.energy_figure(tree),
    ):
        assert fig is not None and fig.get_layout_engine() is not None
        assert _overlaps(fig) == []
        plt.close(fig)


def test_baseline_maps_are_read_at_the_posterior_pixels():
    from bayes_sc.report.baseline import _at_pixels

    grid = np.arange(12.0).reshape(3, 4)
    post = xr.Dataset(
        coords={"xray_row": ("xray_pixel", [0, 2, 5]), "xray_col": ("xray_pixel", [1, 3, 0])}
    )
    got = _at_pixels({"a1": grid, "a_AL": 0.575}, post, "xray", ("a1", "a_AL", "phi"))
    assert list(got) == ["a1"]
    np.testing.assert_array_equal(got["a1"], [1.0, 11.0, np.nan])  # row 5: outside that grid


def test_flat_count_ppc_is_a_rootogram_of_a_subsample(rng):
    import matplotlib.pyplot as plt

    n = 8000
    obs = xr.Dataset({"saxs_counts": ("saxs_counts_dim_0", rng.poisson(5, n))})
    pp = xr.Dataset(
        {"saxs_counts": (("chain", "draw", "saxs_counts_dim_0"), rng.poisson(5, (2, 20, n)))}
    )
    tree = xr.DataTree.from_dict({"observed_data": obs, "posterior_predictive": pp})
    fig = checks.ppc_figure(tree, "saxs_counts")
    assert "rootogram, 5000 observations" in fig._suptitle.get_text()
    assert _overlaps(fig) == []
    plt.close(fig)


def test_worst_mixing_skips_transforms_of_an_entry_already_picked():
    summary = pd.DataFrame(
        {"r_hat": [1.2, 1.19, 1.1, 1.0, 1.0], "ess_bulk": [50, 50, 300, 20, 21]},
        index=["g_q_field[r1c2]", "g_q[r1c2]", "phi[r0c0]", "pl_gain_z", "pl_gain"],
    )
    assert tables.worst_mixing(summary, 4) == ["g_q_field[r1c2]", "phi[r0c0]", "pl_gain_z"]


def test_an_auxiliary_plot_that_cannot_be_drawn_becomes_a_note(tmp_path, rng):
    from bayes_sc.report import _ppc_section

    obs = xr.Dataset({"cube": (("a", "b", "c"), rng.random((2, 2, 2)))})
    pp = xr.Dataset({"cube": (("chain", "draw", "a", "b", "c"), rng.random((2, 5, 2, 2, 2)))})
    tree = xr.DataTree.from_dict({"observed_data": obs, "posterior_predictive": pp})
    notes = []
    sec = _ppc_section(tree, tmp_path, 0.9, notes)
    assert sec.figures == [] and len(notes) == 1
    assert notes[0].startswith("predictive check of cube not drawn: ValueError")


def test_without_sample_stats_the_checks_are_marked_not_recorded(posteriors, tmp_path):
    from bayes_sc.report import read_posterior

    tree = xr.open_datatree(posteriors["pl"]).load()
    bare = xr.DataTree.from_dict({"posterior": tree["posterior"].to_dataset()})
    bare.to_netcdf(tmp_path / "bare.nc")  # no sample_stats, no model attribute
    tree, model = read_posterior(tmp_path / "bare.nc")
    assert model == "pl"  # told by its pixel dim
    post = tree["posterior"].to_dataset()
    diag = tables.diagnostics(tree, tables.summary_table(post))
    assert diag["divergences"] is None and diag["bfmi"] is None
    assert diag["sampling_time_s"] is None
    assert diag["checks"]["divergences"] == {"pass": True, "recorded": False, "count": None}
    assert diag["complete"] is False
    assert "divergences not recorded" in verdict_text(diag)


def test_joint_posterior_gets_maps_of_every_modality_and_the_slopes(posteriors, tmp_path, rng):
    xray = xr.open_datatree(posteriors["xray"]).load()
    pl = xr.open_datatree(posteriors["pl"])["posterior"].to_dataset()
    n = 300  # the hand-made regression's draws
    post = xray["posterior"].to_dataset()[["g_q"]].merge(pl[["blueshift"]]).isel(draw=slice(n))
    beta = _regression_tree(rng)["posterior"]["beta"]
    post["beta"] = (beta.dims, beta.values)
    post = post.assign_coords(response=beta["response"].values, covariate=beta["covariate"].values)
    stats = xray["sample_stats"].to_dataset().isel(draw=slice(n))
    tree = xr.DataTree.from_dict({"posterior": post, "sample_stats": stats})
    tree.attrs["model"] = "joint"
    tree.to_netcdf(tmp_path / "joint.nc")
    md = write_report(tmp_path / "joint.nc").read_text()
    for name in ("map_g_q", "map_blueshift", "profiles_xray", "profiles_pl", "forest_beta"):
        assert f"figures/{name}.png" in md, name
    assert "| tau | g_q |" in md and "Collinearity" not in md
