"""The simulator writes real formats that our readers and independent readers agree on."""

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle filter for plain h5py)
import numpy as np
import ptufile
import pytest

from bayes_sc.io.eiger import open_xray
from bayes_sc.io.irf import read_irf
from bayes_sc.io.manifest import read_manifest
from bayes_sc.io.pl_spectra import read_pl_spectra
from bayes_sc.io.ptu import read_flim_image
from bayes_sc.presets import load_preset
from bayes_sc.simulate.fields import crystal_outline, grid_mask, xray_fields

SPEC7_XRAY = ("a1", "a2", "a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")


@pytest.fixture(scope="module")
def sim(small_sim):
    return read_manifest(small_sim), small_sim.parent


def test_manifest_and_xray_round_trip(sim):
    man, root = sim
    cfg = man.preset["simulate"]["xray"]
    assert man.xray.scan_shape == (5, 6)
    with open_xray(man.xray.master) as x:
        assert x.n_frames == 30 and x.frame_shape == (2167, 2070)
        g = x.geometry
        for key in (
            "beam_center_x",
            "beam_center_y",
            "distance_mm",
            "wavelength_nm",
            "pixel_size_mm",
        ):
            assert getattr(g, key) == pytest.approx(cfg[key], rel=1e-12)
        assert x.bit_depth == cfg["bit_depth"] and x.count_time_s == pytest.approx(
            cfg["count_time_s"]
        )
        # independent reader: plain h5py + hdf5plugin through the master's external links
        with h5py.File(man.xray.master) as f:
            ref_mask = (
                f["entry/instrument/detector/detectorSpecific/pixel_mask"][()] & 0xFFFF
            ) != 0
            np.testing.assert_array_equal(x.pixel_mask, ref_mask)
            keys = sorted(k for k in f["entry/data"] if k.startswith("data_"))
            assert len(keys) == 5  # one data file per scan row (fast axis), as at P10
            raw = f["entry/data"][keys[1]][2]  # frame 8 = second file, third frame
        np.testing.assert_array_equal(x.frame(8), raw)
        # masked pixels hold the saturation value, as DECTRIS writes them
        assert np.all(raw[ref_mask] == x.saturation_value)
    with open_xray(man.xray.background) as b:
        assert b.n_frames == man.preset["simulate"]["xray"]["background_frames"]


def test_saxs_peak_counts_match_truth(sim):
    """Counts near the brightest crystal pixel's SAXS peaks exceed the background frames'."""
    man, root = sim
    with h5py.File(root / "truth.h5") as t:
        mask = t["xray/mask"][()]
    i = int(np.flatnonzero(mask.ravel())[0])
    j = int(np.flatnonzero(~mask.ravel())[0])
    with open_xray(man.xray.master) as x:
        rows, cols = np.ogrid[:2167, :2070]
        near = (rows - x.geometry.beam_center_y) ** 2 + (
            cols - x.geometry.beam_center_x
        ) ** 2 < 150**2
        ok = near & ~x.pixel_mask
        crystal = x.frame(i)[ok].sum()
        empty = x.frame(j)[ok].sum()
    # the crystal adds tens of thousands of SAXS counts over a background of a few thousand
    assert crystal > empty + 10 * np.sqrt(empty) + 5000


def test_flim_ptu_and_irf_round_trip(sim):
    man, root = sim
    img = read_flim_image(man.flim.ptu)
    with h5py.File(root / "truth.h5") as t:
        fmask = t["flim/mask"][()]
        amp = t["flim/amplitude"][()]
        bg = t["flim/background"][()]
    assert img.counts.shape[:2] == fmask.shape
    fcfg = man.preset["simulate"]["flim"]
    assert img.bin_ps == pytest.approx(fcfg["bin_ps"]) and img.period_ns == pytest.approx(
        fcfg["period_ns"]
    )
    assert img.n_bins == round(fcfg["period_ns"] * 1000 / fcfg["bin_ps"])
    # independent reader: ptufile directly
    with ptufile.PtuFile(man.flim.ptu) as p:
        direct = p.decode_image(channel=img.channel, dtime=img.n_bins)
    assert direct.sum() == img.photons == img.counts.sum()
    expected = np.nansum(amp) + bg * img.counts.size
    assert abs(img.photons - expected) < 5 * np.sqrt(expected)
    irf = read_irf(man.flim.irf, expect_bin_ps=img.bin_ps, expect_period_ns=img.period_ns)
    assert irf.counts.size == img.n_bins


def test_pl_spectra_and_truth_contents(sim):
    man, root = sim
    pl = read_pl_spectra(man.pl.spectra)
    with h5py.File(root / "truth.h5") as t:
        assert t["pl/E_peak"].shape == (pl.n_points,)
        assert pl.outline_um is not None
        mask = t["xray/mask"][()]
        for k in SPEC7_XRAY:
            v = t[f"xray/{k}"][()]
            assert v.shape == mask.shape
            assert np.all(np.isfinite(v[mask])) and np.all(np.isnan(v[~mask]))
        assert np.isscalar(t["xray/a_AL"][()]) or t["xray/a_AL"].shape == ()
        tau = t["flim/tau"][()]
        assert np.all(np.isfinite(tau[t["flim/mask"][()]]))
        assert t["law/tau/beta"].shape == (3,) and t["law/blueshift/beta"].shape == (3,)
        inner = t["pl/edge_um"][()] >= np.quantile(t["pl/edge_um"][()], 0.75)
        assert abs(t["pl/blueshift"][()][inner].mean()) < 1e-9


def test_fields_follow_the_paper_trends(rng):
    """On a paper-scale grid the fields move from the centre values to the edge values."""
    cfg = load_preset("cspbbr2cl")["simulate"]["xray"]
    outline = crystal_outline((6.0, 6.0), (4.5, 4.5), rng)
    mask = grid_mask(outline, (25, 25), (0.5, 0.5))
    f = xray_fields(mask, (0.5, 0.5), cfg, rng)
    e = f["edge_um"]
    centre, edge = mask & (e >= 2.5), mask & (e <= 0.5)
    assert 240 < mask.sum() < 380  # paper: 293 crystal pixels of 625
    assert f["a_mean"][centre].mean() == pytest.approx(10.5, abs=0.4)
    assert f["a_mean"][edge].mean() == pytest.approx(8.4, abs=0.6)
    assert f["delta_psi"][edge].mean() > f["delta_psi"][centre].mean() + 8
    assert f["g_q"][edge].mean() > f["g_q"][centre].mean() + 0.5
    assert f["I_AL"][edge].mean() < f["I_AL"][centre].mean()
    np.testing.assert_allclose(np.nanmean(f["psi"] - f["phi"]), 45.0, atol=0.5)
    assert 70 < np.nanmean(f["phi"]) < 100 and np.nanmax(f["gamma"]) > 95


def test_same_seed_same_fields():
    cfg = load_preset("cspbbr2cl")["simulate"]["xray"]
    out = []
    for _ in range(2):
        r = np.random.default_rng(3)
        m = grid_mask(crystal_outline((3.0, 3.0), (2.0, 2.0), r), (12, 12), (0.5, 0.5))
        out.append(xray_fields(m, (0.5, 0.5), cfg, r)["a1"])
    np.testing.assert_array_equal(out[0], out[1])


def test_cli_simulate_then_info_round_trip(tmp_path, capsys):
    """`bayes-sc simulate` then `info --json` give back what the simulator wrote."""
    import json

    from bayes_sc.cli import main

    out = tmp_path / "sc"
    assert main(["simulate", str(out), "--scan", "4x5", "--seed", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(out / "supercrystal.toml"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    cfg = load_preset("cspbbr2cl")["simulate"]
    assert info["xray"]["n_frames"] == 20 and info["xray"]["scan_shape"] == [4, 5]
    assert info["xray"]["frame_shape"] == [2167, 2070]
    assert info["xray"]["beam_center_x"] == pytest.approx(cfg["xray"]["beam_center_x"])
    assert info["xray"]["n_background_frames"] == cfg["xray"]["background_frames"]
    with h5py.File(out / "xray/scan_master.h5") as f:
        pm = f["entry/instrument/detector/detectorSpecific/pixel_mask"][()]
    assert info["xray"]["n_masked_pixels"] == int(((pm & 0xFFFF) != 0).sum())
    with ptufile.PtuFile(out / "flim/map.ptu") as p:
        total = int(p.decode_image(channel=0, dtime=info["flim"]["n_bins"]).sum())
        assert list(p.shape[1:3]) == info["flim"]["shape"]
    assert info["flim"]["photons"] == total
    assert info["flim"]["bin_ps"] == pytest.approx(cfg["flim"]["bin_ps"])
    with h5py.File(out / "truth.h5") as t:
        assert info["pl"]["n_points"] == t["pl/E_peak"].shape[0]
    # a non-empty folder that is not an earlier simulation is refused, and left alone
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    assert main(["simulate", str(other), "--scan", "4x4", "--quiet"]) == 2
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]
