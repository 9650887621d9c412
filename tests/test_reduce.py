"""Reduction: exact integer sums, geometry against pyFAI, bad input, no partial output."""

import shutil

import h5py
import hdf5plugin
import numpy as np
import pytest

from bayes_sc.errors import InputError
from bayes_sc.io.eiger import open_xray
from bayes_sc.io.manifest import read_manifest
from bayes_sc.reduce import frames as frames_mod
from bayes_sc.reduce import reduce_dataset
from bayes_sc.reduce.bins import peak_regions


@pytest.fixture(scope="module")
def reduced(small_sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("red") / "reduced.h5"
    summary = reduce_dataset(small_sim, out, progress=False)
    return small_sim, out, summary


def _recount(frame, pixel_bin, excluded_rc, n_bins):
    """The SPEC §4.1 check, in plain NumPy."""
    use = pixel_bin >= 0
    if len(excluded_rc):
        use[excluded_rc[:, 0], excluded_rc[:, 1]] = False
    return np.bincount(pixel_bin[use], weights=frame[use].astype(np.float64), minlength=n_bins)


def test_counts_are_exact_integer_sums(reduced):
    manifest, out, summary = reduced
    man = read_manifest(manifest)
    with h5py.File(out) as f, open_xray(man.xray.master) as x:
        g = f["xray"]
        pb, counts, exc = g["pixel_bin"][()], g["counts"][()], g["excluded"][()]
        assert counts.dtype == np.uint32 and pb.dtype == np.int32
        assert counts.shape == (x.n_frames, g["bin_npix"].shape[0])
        assert not g["frame_excluded"][()].any()
        # the simulator puts a saturated zinger in ~30 % of frames: some must be excluded
        assert exc.shape[1] == 3 and len(exc) > 0
        checked = sorted({0, x.n_frames - 1, *exc[:3, 0].tolist()})
        for i in checked:
            frame = x.frame(i)
            ref = _recount(frame, pb, exc[exc[:, 0] == i][:, 1:], counts.shape[1])
            np.testing.assert_array_equal(counts[i], ref.astype(np.uint64))
            raw_total = frame[~x.pixel_mask & (frame < x.saturation_value)].sum(dtype=np.uint64)
            assert counts[i].sum(dtype=np.uint64) <= raw_total
        # excluded pixels are unmasked, binned and saturated in their frame
        for fr, r, c in exc[:20]:
            assert pb[r, c] >= 0 and not x.pixel_mask[r, c]
            assert x.frame(fr)[r, c] >= x.saturation_value
        assert (pb[x.pixel_mask] == -1).all()


def test_bins_geometry_matches_pyfai(reduced):
    pyFAI = pytest.importorskip("pyFAI")
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    _, out, _ = reduced
    with h5py.File(out) as f:
        g = f["xray"]
        a = dict(g.attrs)
        pb = g["pixel_bin"][()]
        q_bin, phi_bin, npix = g["bin_q_nm_inv"][()], g["bin_phi_deg"][()], g["bin_npix"][()]
    p = a["pixel_size_mm"] * 1e-3
    ai = AzimuthalIntegrator(
        dist=a["distance_mm"] * 1e-3, poni1=(a["beam_center_y"] + 0.5) * p,
        poni2=(a["beam_center_x"] + 0.5) * p, wavelength=a["wavelength_nm"] * 1e-9,
        detector=Detector(pixel1=p, pixel2=p, max_shape=pb.shape),
    )  # fmt: skip
    assert pyFAI is not None
    q = ai.center_array(pb.shape, unit="q_nm^-1")
    chi = np.degrees(ai.center_array(pb.shape, unit="chi_rad")) % 360.0
    use = pb >= 0
    n = np.bincount(pb[use], minlength=q_bin.size)
    np.testing.assert_array_equal(n, npix)
    np.testing.assert_allclose(np.bincount(pb[use], q[use]) / n, q_bin, rtol=1e-9)
    np.testing.assert_allclose(np.bincount(pb[use], chi[use]) / n, phi_bin, rtol=1e-9, atol=1e-9)


def test_regions_cover_every_peak_the_priors_allow(reduced):
    """Truth peaks of the simulated crystal lie inside the binned q ranges."""
    manifest, out, _ = reduced
    man = read_manifest(manifest)
    regions = peak_regions(man.preset)
    saxs, waxs = regions[0], regions[1:]
    with h5py.File(manifest.parent / "truth.h5") as t:
        a1, a2 = t["xray/a1"][()], t["xray/a2"][()]
    assert saxs[1] < 2 * np.pi / np.nanmax([a1, a2]) and 2 * np.pi / np.nanmin([a1, a2]) < saxs[2]
    for q0 in (10.93, 15.44, 21.90):  # the paper's WAXS radii
        assert any(lo < q0 < hi for _, lo, hi in waxs)
    with h5py.File(out) as f:
        assert set(np.unique(f["xray/bin_region"][()])) == {0, 1}
        assert f["xray/background_counts"].shape == f["xray/bin_npix"].shape
        assert f["xray"].attrs["background_exposure_s"] > 0
        assert f["flim/counts"].ndim == 3 and f["flim/irf"].ndim == 1
        assert f["pl/counts"].shape[0] == f["pl/x_um"].shape[0]


def _copy(small_sim, tmp_path):
    dst = tmp_path / "sc"
    shutil.copytree(small_sim.parent, dst)
    return dst / "supercrystal.toml"


def _rewrite_frame(data_file, index, value, dtype=None):
    """Replace one frame of a bitshuffle-LZ4 data file (optionally with another dtype)."""
    with h5py.File(data_file, "r") as f:
        data = f["entry/data/data"][()]
        attrs = dict(f["entry/data/data"].attrs)
    data = data.astype(dtype) if dtype is not None else data
    data[index] = value
    data_file.unlink()
    with h5py.File(data_file, "w") as f:
        d = f.create_dataset(
            "entry/data/data",
            data=data,
            chunks=(1, *data.shape[1:]),
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        d.attrs.update(attrs)


def test_all_masked_frame_is_kept_and_flagged(small_sim, tmp_path, caplog):
    manifest = _copy(small_sim, tmp_path)
    _rewrite_frame(manifest.parent / "xray/scan_data_000001.h5", 2, 2**32 - 1)
    out = tmp_path / "reduced.h5"
    summary = reduce_dataset(manifest, out, progress=False)
    assert summary["xray"]["frames_excluded"] == 1
    assert "frame 2" in caplog.text
    with h5py.File(out) as f:
        assert f["xray/frame_excluded"][()].tolist() == [i == 2 for i in range(30)]
        assert not f["xray/counts"][2].any() and f["xray/counts"][3].any()


def test_float_frames_with_nan_are_refused(small_sim, tmp_path):
    manifest = _copy(small_sim, tmp_path)
    _rewrite_frame(manifest.parent / "xray/scan_data_000002.h5", 1, np.nan, dtype=np.float32)
    out = tmp_path / "reduced.h5"
    with pytest.raises(InputError, match="scan_data_000002.h5.*float32"):
        reduce_dataset(manifest, out, progress=False)
    assert list(tmp_path.glob("*.h5*")) == []


def test_wrong_frame_count_and_missing_background(small_sim, tmp_path):
    manifest = _copy(small_sim, tmp_path)
    text = manifest.read_text()
    manifest.write_text(text.replace("scan_shape = [5, 6]", "scan_shape = [5, 5]"))
    with pytest.raises(InputError, match="scan_shape"):
        reduce_dataset(manifest, tmp_path / "r.h5", progress=False)
    manifest.write_text(text)
    (manifest.parent / "xray/kapton_master.h5").unlink()
    with pytest.raises(InputError, match="xray.background"):
        reduce_dataset(manifest, tmp_path / "r.h5", progress=False)
    assert not (tmp_path / "r.h5").exists()


def test_interrupt_leaves_no_partial_output(small_sim, tmp_path, monkeypatch):
    calls = []
    original = frames_mod.Binner.__call__

    def interrupting(self, index, frame):
        calls.append(index)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return original(self, index, frame)

    monkeypatch.setattr(frames_mod.Binner, "__call__", interrupting)
    with pytest.raises(KeyboardInterrupt):
        reduce_dataset(small_sim, tmp_path / "reduced.h5", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_never_overwrites_an_input(small_sim, tmp_path):
    manifest = _copy(small_sim, tmp_path)
    before = manifest.read_bytes()
    with pytest.raises(InputError, match="overwrite an input"):
        reduce_dataset(manifest, manifest, progress=False)
    assert manifest.read_bytes() == before


def test_cli_reduce_prints_totals_and_fails_cleanly(small_sim, tmp_path, capsys):
    from bayes_sc.cli import main

    out = tmp_path / "r.h5"
    assert main(["reduce", str(small_sim), "-o", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    with h5py.File(out) as f:
        total = int(f["xray/counts"][()].sum(dtype=np.uint64))
    assert f"binned counts {total}" in text and "FLIM:" in text and "PL:" in text
    manifest = _copy(small_sim, tmp_path / "bad")
    manifest.write_text(manifest.read_text().replace("scan_shape = [5, 6]", "scan_shape = [6, 6]"))
    assert main(["reduce", str(manifest), "-o", str(tmp_path / "bad.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "supercrystal.toml" in err[0] and "scan_shape" in err[0]
    assert not (tmp_path / "bad.h5").exists()
