"""EIGER master/data reader and writer, PONI reader (SPEC §4, §5)."""

from __future__ import annotations

from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from bayes_sc.errors import InputError
from bayes_sc.io.eiger import open_xray, validate_frame_count
from bayes_sc.io.eiger_write import eiger4m_gap_mask, write_eiger
from bayes_sc.io.poni import read_poni
from bayes_sc.physics.geometry import DetectorGeometry

REAL = Path(__file__).parents[2] / "shared/data/eiger/hdf5plugin_eiger4m_bitshuffle.h5"
SHAPE = (64, 80)
GEOM = DetectorGeometry(
    beam_center_x=30.25, beam_center_y=20.5, distance_mm=412.0, wavelength_nm=0.0898,
    pixel_size_mm=0.075,
)  # fmt: skip
REAL_OVERRIDES = dict(
    beam_center_x=1030.0, beam_center_y=1100.0, distance_mm=412.0, wavelength_nm=0.0898,
    pixel_size_mm=0.075,
)  # fmt: skip


def _frames(n, shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.poisson(5.0 + i, size=shape).astype(np.uint32) for i in range(n)]


def _mask(shape=SHAPE):
    mask = np.zeros(shape, np.uint32)
    mask[:, 40:43] = 1  # gap
    mask[10, 5] = 2  # dead
    mask[30, 60] = 1 << 31  # virtual pixel only: bit above 0xFFFF, not bad
    return mask


@pytest.fixture
def scan(tmp_path):
    """A 7-frame scan in 3 data files (3 + 3 + 1 frames)."""
    frames = _frames(7)
    master = tmp_path / "scan_master.h5"
    written = write_eiger(
        master, iter(frames), geometry=GEOM, pixel_mask=_mask(), bit_depth=32,
        count_time_s=0.5, frames_per_file=3, n_frames=7,
    )  # fmt: skip
    return master, frames, written


def _expected(frame, bit_depth=32):
    out = frame.copy()
    out[(_mask() & 0xFFFF) != 0] = 2**bit_depth - 1
    return out


def test_round_trip(scan):
    master, frames, written = scan
    assert [p.name for p in written] == [
        "scan_master.h5", "scan_data_000001.h5", "scan_data_000002.h5", "scan_data_000003.h5",
    ]  # fmt: skip
    assert not [p for p in master.parent.iterdir() if ".tmp" in p.name]
    with open_xray(master) as xf:
        assert xf.n_frames == 7 and len(xf) == 7
        assert xf.frame_shape == SHAPE
        assert xf.dtype == np.uint32 and xf.bit_depth == 32
        assert xf.saturation_value == 2**32 - 1
        assert xf.count_time_s == pytest.approx(0.5)
        for key, value in GEOM.as_dict().items():
            assert getattr(xf.geometry, key) == pytest.approx(value, rel=1e-12)
        assert np.array_equal(xf.pixel_mask, (_mask() & 0xFFFF) != 0)
        assert xf.n_masked_pixels == 64 * 3 + 1
        assert not xf.pixel_mask[30, 60]
        got = list(xf.iter_frames())
        assert len(got) == 7
        for i, (a, b) in enumerate(zip(got, frames, strict=True)):
            assert a.dtype == np.uint32
            assert np.array_equal(a, _expected(b)), i
        assert np.array_equal(xf.frame(4), got[4]) and np.array_equal(xf.frame(-1), got[6])
        subset = list(xf.iter_frames(2, 5))
        assert len(subset) == 3
        assert all(np.array_equal(a, got[i]) for a, i in zip(subset, (2, 3, 4), strict=True))
        assert len(list(xf.iter_frames(5))) == 2
        with pytest.raises(IndexError):
            xf.frame(7)
        validate_frame_count(xf, (1, 7), master)
        with pytest.raises(InputError, match=r"scan_master\.h5.*12 frames.*7 frames"):
            validate_frame_count(xf, (3, 4), master)


def test_independent_reader(scan):
    """Plain h5py + hdf5plugin see the same layout and values."""
    master, frames, _ = scan
    with h5py.File(master, "r") as f:
        assert f["entry"].attrs["NX_class"] == "NXentry"
        links = sorted(f["entry/data"])
        assert links == ["data_000001", "data_000002", "data_000003"]
        link = f["entry/data"].get("data_000002", getlink=True)
        assert isinstance(link, h5py.ExternalLink)
        assert (link.filename, link.path) == ("scan_data_000002.h5", "/entry/data/data")
        det = f["entry/instrument/detector"]
        assert det["detector_distance"][()] == pytest.approx(0.412)
        assert det["x_pixel_size"][()] == pytest.approx(75e-6)
        assert det["beam_center_x"][()] == pytest.approx(30.25)
        assert f["entry/instrument/beam/incident_wavelength"][()] == pytest.approx(0.898)
        spec = det["detectorSpecific"]
        assert spec["compression"][()] == b"bslz4" and spec["nimages"][()] == 7
        assert (spec["y_pixels_in_detector"][()], spec["x_pixels_in_detector"][()]) == SHAPE
        assert np.array_equal(spec["pixel_mask"][()], _mask())
    with h5py.File(master.parent / "scan_data_000002.h5", "r") as f:
        dset = f["entry/data/data"]
        assert dset.shape == (3, *SHAPE) and dset.chunks == (1, *SHAPE)
        assert "32008" in dset._filters  # bitshuffle
        assert (dset.attrs["image_nr_low"], dset.attrs["image_nr_high"]) == (4, 6)
        assert np.array_equal(dset[1], _expected(frames[4]))


def test_uint16_and_clipping(tmp_path):
    frames = [np.full(SHAPE, 70000, np.int64), np.arange(np.prod(SHAPE)).reshape(SHAPE) % 9]
    master = tmp_path / "small.h5"
    write_eiger(
        master, frames, geometry=GEOM, pixel_mask=np.zeros(SHAPE, np.uint32), bit_depth=16,
        count_time_s=None, frames_per_file=5, n_frames=2,
    )  # fmt: skip
    assert (tmp_path / "small_data_000001.h5").exists()
    with open_xray(master) as xf:
        assert xf.dtype == np.uint16 and xf.bit_depth == 16 and xf.count_time_s is None
        assert np.all(xf.frame(0) == 65535) and np.array_equal(xf.frame(1), frames[1])


def test_writer_rejects_short_iterable_and_cleans_up(tmp_path):
    master = tmp_path / "scan_master.h5"
    with pytest.raises(ValueError, match="ran out"):
        write_eiger(
            master, _frames(4), geometry=GEOM, pixel_mask=_mask(), bit_depth=32,
            count_time_s=1.0, frames_per_file=2, n_frames=5,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_overrides_and_poni(scan, tmp_path):
    master, _, _ = scan
    poni = tmp_path / "g.poni"
    poni.write_text(
        "poni_version: 2\nDetector: Detector\n"
        'Detector_config: {"pixel1": 0.0001, "pixel2": 0.0001, "max_shape": null}\n'
        "Distance: 0.5\nPoni1: 0.00205\nPoni2: 0.00305\nRot1: 0\nRot2: 0\nRot3: 0\n"
        "Wavelength: 1.0e-10\n"
    )
    with open_xray(master, {"poni": poni, "distance_mm": 300.0}) as xf:
        g = xf.geometry
        assert g.distance_mm == pytest.approx(300.0)  # manifest beats PONI
        assert g.pixel_size_mm == pytest.approx(0.1)  # PONI beats master
        assert g.wavelength_nm == pytest.approx(0.1)
        assert (g.beam_center_x, g.beam_center_y) == pytest.approx((30.0, 20.0))
    with pytest.raises(InputError, match="unknown geometry override"):
        open_xray(master, {"beam_centre_x": 1.0})


def test_poni_matches_pyfai(tmp_path):
    pyFAI = pytest.importorskip("pyFAI")
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    det = Detector(pixel1=75e-6, pixel2=75e-6, max_shape=SHAPE)
    ai = AzimuthalIntegrator(
        dist=0.25, poni1=0.00213, poni2=0.00377, wavelength=0.9e-10, detector=det
    )
    ai.save(str(tmp_path / "a.poni"))
    geo = read_poni(tmp_path / "a.poni")
    g = DetectorGeometry(**geo)
    rows, cols = np.array([0, 3, 28, 63, 50]), np.array([0, 79, 50, 12, 40])
    q, phi = g.q_phi(rows, cols)
    ai2 = pyFAI.load(str(tmp_path / "a.poni"))
    q_ref = ai2.qArray(SHAPE)[rows, cols]  # nm^-1
    chi_ref = np.rad2deg(ai2.center_array(SHAPE, unit="chi_rad")[rows, cols]) % 360.0
    # pyFAI computes pixel positions in float32: ~1e-8 nm^-1 absolute near the beam
    np.testing.assert_allclose(q, q_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(((phi - chi_ref + 180.0) % 360.0) - 180.0, 0.0, atol=1e-6)
    assert geo["distance_mm"] == pytest.approx(250.0)
    assert geo["wavelength_nm"] == pytest.approx(0.09)


def test_poni_version1_and_rotation(tmp_path):
    v1 = tmp_path / "v1.poni"
    v1.write_text(
        "# old\nPixelSize1: 7.5e-05\nPixelSize2: 7.5e-05\nDistance: 0.1\n"
        "Poni1: 0.0075\nPoni2: 0.015\nRot1: 0.0\nRot2: 0.0\nRot3: 0.0\nWavelength: 1e-10\n"
    )
    geo = read_poni(v1)
    assert geo["beam_center_y"] == pytest.approx(99.5)
    assert geo["beam_center_x"] == pytest.approx(199.5)
    assert geo["pixel_size_mm"] == pytest.approx(0.075)
    tilted = tmp_path / "tilted.poni"
    tilted.write_text(v1.read_text().replace("Rot2: 0.0", "Rot2: 0.01"))
    with pytest.raises(InputError, match=r"tilted\.poni.*Rot2.*normal to the beam"):
        read_poni(tilted)


def test_real_eiger4m_frame():
    if not REAL.exists():
        pytest.skip(f"shared test data absent: {REAL} (needs the ../shared folder)")
    with open_xray(REAL, REAL_OVERRIDES) as xf:
        assert xf.n_frames == 1 and xf.frame_shape == (2167, 2070)
        assert xf.dtype == np.uint32 and xf.bit_depth == 32
        frame = xf.frame(0)
        assert frame[1372, 613] == 922
        assert np.array_equal(xf.pixel_mask, frame == 2**32 - 1)
        assert 250_000 < xf.n_masked_pixels < 253_000
        gaps = eiger4m_gap_mask() != 0
        assert xf.pixel_mask[gaps].all()  # the real gaps are where the helper puts them
    with pytest.raises(InputError, match=r"bitshuffle\.h5.*missing geometry.*distance_mm ="):
        open_xray(REAL)


def test_gap_mask():
    mask = eiger4m_gap_mask()
    assert mask.shape == (2167, 2070) and mask.dtype == np.uint32
    assert (mask != 0).sum() == 10 * 2167 + 3 * 37 * 2070 - 3 * 37 * 10
    assert mask[514, 0] == 1 and mask[513, 0] == 0 and mask[551, 0] == 0 and mask[0, 1039] == 1
    assert eiger4m_gap_mask((600, 1035)).sum() == 37 * 1035 + 5 * 600 - 37 * 5


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope_master\.h5: .*not found"):
        open_xray(tmp_path / "nope_master.h5")


def test_dangling_external_link(scan):
    master, _, written = scan
    written[2].unlink()
    with pytest.raises(InputError, match=r"scan_master\.h5: .*missing data file scan_data_000002"):
        open_xray(master)


def test_truncated_hdf5(scan):
    master, _, written = scan
    for path in (written[1], master):
        size = path.stat().st_size
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)
        with pytest.raises(InputError, match=rf"{path.name}: .*truncated") as err:
            open_xray(master)
        assert str(err.value).startswith(str(path))


def test_not_hdf5(tmp_path):
    path = tmp_path / "notes_master.h5"
    path.write_text("this is not HDF5\n")
    with pytest.raises(InputError, match=r"notes_master\.h5: .*not an HDF5 file"):
        open_xray(path)


def test_bad_layouts(tmp_path):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f["entry/data/data"] = np.zeros(SHAPE, np.uint32)
    with pytest.raises(InputError, match=r"flat\.h5: .*expected \(n, rows, cols\)"):
        open_xray(path, REAL_OVERRIDES)
    with h5py.File(path, "w") as f:
        f["entry/data/other"] = np.zeros(3)
    with pytest.raises(InputError, match=r"flat\.h5: no data_000001"):
        open_xray(path, REAL_OVERRIDES)
    with h5py.File(path, "w") as f:
        f["entry/data/data_000001"] = np.zeros((2, *SHAPE), np.uint32)
        f["entry/data/data_000002"] = np.zeros((2, 10, 10), np.uint32)
    with pytest.raises(InputError, match=r"flat\.h5: inconsistent frame shapes"):
        open_xray(path, REAL_OVERRIDES)


def test_missing_filter(scan, monkeypatch):
    master, _, _ = scan
    monkeypatch.setattr(h5py.h5z, "filter_avail", lambda code: code != 32008)
    with pytest.raises(InputError, match=r"scan_data_000001\.h5: .*32008.*hdf5plugin"):
        open_xray(master)


def test_hdf5plugin_registered():
    assert hdf5plugin.Bitshuffle and h5py.h5z.filter_avail(32008)
