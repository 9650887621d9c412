"""PTU FLIM images and IRFs: real PicoQuant files, our writer, and bad input."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import ptufile
import pytest

from bayes_sc.errors import InputError
from bayes_sc.io.irf import read_irf, write_irf_h5
from bayes_sc.io.ptu import bins_in_period, ptu_summary, read_flim_image, write_flim_ptu

PTU_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptu"
IMAGES = ["hazelnut_z1.ptu", "hazelnut_z2.ptu", "tttrlib_MT200_HH400_beads.ptu"]
POINTS = ["tsb_hydraharp_v10_t3.ptu", "tsb_hydraharp_v20_t3.ptu"]
POINT_MSG = "is a point measurement, not an image scan; give it as the IRF"


def real(name: str) -> Path:
    """Path of a real PicoQuant file in ../shared/data/ptu, or skip with the reason."""
    path = PTU_DIR / name
    if not path.exists():
        pytest.skip(f"real PicoQuant file {path} not available (../shared is absent)")
    return path


def raises_input(match: str, name: str | Path):
    """Context manager: an InputError whose message holds ``match`` and the file's name."""
    return pytest.raises(InputError, match=rf"{Path(name).name}.*{match}")


# --- real files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGES + POINTS)
def test_every_real_ptu_opens(name):
    path = real(name)
    s = ptu_summary(path)
    with ptufile.PtuFile(path) as p:
        assert s["is_image"] == p.is_image == (name in IMAGES)
        assert s["bin_ps"] == pytest.approx(p.tcspc_resolution * 1e12, rel=1e-12)
        assert s["period_ns"] == pytest.approx(1e9 / p.frequency, rel=1e-12)
        assert s["n_bins"] == p.number_bins_in_period == s["n_bins_ptufile"]
        assert s["photons_recorded"] == p.number_photons
        if not p.is_image:
            hist = p.decode_histogram(dtime=0)
            assert s["photons_per_channel"] == [int(h) for h in hist.sum(axis=1)]
    assert s["photons"] == sum(s["photons_per_channel"]) > 0
    assert s["n_bins"] * s["bin_ps"] <= s["period_ns"] * 1e3 * (1 + 1e-9)


@pytest.mark.parametrize("name", IMAGES)
def test_real_images_match_ptufile_decode(name):
    path = real(name)
    with ptufile.PtuFile(path) as p:
        n_ch = p.shape[-2]
        ours = [read_flim_image(path, channel=c) for c in range(n_ch)]
        for c, im in enumerate(ours):
            ref = p.decode_image(channel=c, dtime=0).sum(axis=0, dtype=np.uint32)[..., 0, :]
            assert im.counts.dtype == np.uint32
            assert im.counts.shape == ref.shape == (*p.shape[1:3], p.number_bins_in_period)
            assert np.array_equal(im.counts, ref)
            assert im.photons == int(p.decode_image(channel=c, dtime=0).sum())
            assert im.pixel_um == pytest.approx(p.tags["ImgHdr_PixResol"])
            assert im.bin_ps == pytest.approx(p.tcspc_resolution * 1e12)
    default = read_flim_image(path)
    assert default.photons == max(im.photons for im in ours)
    if name.startswith("hazelnut"):
        assert default.counts.shape == (256, 256, 132)
        assert ptu_summary(path)["n_frames"] == 5


def test_beads_channel_choice():
    path = real("tttrlib_MT200_HH400_beads.ptu")
    default = read_flim_image(path)
    one = read_flim_image(path, channel=1, pixel_um=0.05)
    assert default.channel == 0 and one.channel == 1
    assert default.photons > one.photons > 0
    assert not np.array_equal(default.counts, one.counts)
    assert one.pixel_um == 0.05 and default.pixel_um == pytest.approx(0.0308)
    s = ptu_summary(path)
    assert s["channels"] == [0, 1]
    assert s["photons_per_channel"] == [default.photons, one.photons]
    with raises_input("channel 7 has no photons", path):
        read_flim_image(path, channel=7)
    with raises_input("channel 99 does not exist", path):
        read_flim_image(path, channel=99)


@pytest.mark.parametrize("name", POINTS)
def test_point_measurements_are_irfs_not_images(name):
    path = real(name)
    with raises_input(POINT_MSG, path):
        read_flim_image(path)
    irf = read_irf(path)
    with ptufile.PtuFile(path) as p:
        hist = p.decode_histogram(dtime=0)
        assert irf.counts.shape == (p.number_bins_in_period,)  # one period: 3125 bins
        assert irf.channel == int(np.argmax(hist.sum(axis=1)))
        assert np.array_equal(irf.counts, hist[irf.channel].astype(np.float64))
        assert irf.bin_ps == pytest.approx(p.tcspc_resolution * 1e12)
        assert irf.period_ns == pytest.approx(p.global_resolution * 1e9)
        other = read_irf(path, channel=1 - irf.channel, expect_bin_ps=irf.bin_ps)
        assert np.array_equal(other.counts, hist[1 - irf.channel].astype(np.float64))
    with raises_input("IRF bin width .* ps differs from the FLIM image's 1 ps", path):
        read_irf(path, expect_bin_ps=1.0)
    with raises_input("IRF laser period .* differs", path):
        read_irf(path, expect_period_ns=12.5)


def test_image_ptu_as_irf_sums_pixels():
    path = real("hazelnut_z1.ptu")
    im = read_flim_image(path)
    irf = read_irf(path, expect_bin_ps=im.bin_ps, expect_period_ns=im.period_ns)
    assert np.array_equal(irf.counts, im.counts.sum(axis=(0, 1)).astype(np.float64))


# --- our writer ---------------------------------------------------------------------------------


def test_write_read_round_trip_exact(tmp_path, rng):
    counts = rng.poisson(2.0, size=(6, 9, 128)).astype(np.int64)
    counts[0, 0] = 0
    counts[2, 3, 17] = 3000  # a pixel needing many sync periods (nsync overflows)
    out = tmp_path / "map.ptu"
    write_flim_ptu(out, counts, bin_ps=97.0, period_ns=12.5, pixel_um=0.2)
    assert [p.name for p in tmp_path.iterdir()] == ["map.ptu"]  # no temporary file left
    im = read_flim_image(out)
    assert im.counts.dtype == np.uint32 and np.array_equal(im.counts, counts)
    assert (im.bin_ps, im.period_ns, im.pixel_um, im.channel) == pytest.approx((97, 12.5, 0.2, 0))
    assert im.photons == counts.sum()
    # ptufile alone, with its defaults, reads the same image
    with ptufile.PtuFile(out) as p:
        assert p.is_image and p.record_type == ptufile.PtuRecordType.HydraHarp2T3
        assert p.shape == (1, 6, 9, 1, 128)
        assert p.tcspc_resolution == pytest.approx(97e-12)
        assert p.global_resolution == pytest.approx(12.5e-9)
        assert p.tags["ImgHdr_PixResol"] == pytest.approx(0.2)
        assert np.array_equal(p.decode_image(dtime=0)[0, :, :, 0, :], counts)
    s = ptu_summary(out)
    assert s["shape"] == [6, 9] and s["n_bins"] == 128 and s["photons_outside_period"] == 0


def test_bins_per_period_off_by_one(tmp_path, rng):
    # period a hair below 100 whole bins: ptufile's floor gives 99, we keep all 100 bins
    period = 6.4 * (1 - 1e-9)
    assert bins_in_period(period, 64.0) == 100
    counts = rng.poisson(1.0, size=(3, 4, 100)).astype(np.uint16)
    counts[..., -1] += 1
    write_flim_ptu(tmp_path / "a.ptu", counts, bin_ps=64.0, period_ns=period, pixel_um=1.0)
    with ptufile.PtuFile(tmp_path / "a.ptu") as p:
        assert p.number_bins_in_period == 99
    assert np.array_equal(read_flim_image(tmp_path / "a.ptu").counts, counts)
    # 100.5 bins per period: the incomplete last bin is not a bin
    assert bins_in_period(6.432, 64.0) == 100
    write_flim_ptu(tmp_path / "b.ptu", counts, bin_ps=64.0, period_ns=6.432, pixel_um=1.0)
    assert np.array_equal(read_flim_image(tmp_path / "b.ptu").counts, counts)
    with pytest.raises(ValueError, match="bins"):
        write_flim_ptu(tmp_path / "c.ptu", counts, bin_ps=64.0, period_ns=7.0, pixel_um=1.0)
    assert not (tmp_path / "c.ptu").exists()


# --- IRF HDF5 -----------------------------------------------------------------------------------


def test_irf_h5_round_trip_and_checks(tmp_path, rng):
    counts = rng.gamma(2.0, 10.0, size=200)
    out = tmp_path / "irf.h5"
    write_irf_h5(out, counts, 16.0, 25.0)
    irf = read_irf(out, expect_bin_ps=16.0, expect_period_ns=25.0)
    assert np.array_equal(irf.counts, counts) and irf.counts.dtype == np.float64
    assert (irf.bin_ps, irf.period_ns, irf.path) == (16.0, 25.0, out)
    with raises_input("IRF bin width 16 ps differs from the FLIM image's 64 ps", out):
        read_irf(out, expect_bin_ps=64.0)
    with raises_input("IRF laser period 25 ns differs from the FLIM image's 12.5 ns", out):
        read_irf(out, expect_period_ns=12.5)
    # bin_ps as an attribute, no period: the period check does not apply
    attr = tmp_path / "irf_attr.h5"
    with h5py.File(attr, "w") as f:
        f.create_dataset("counts", data=np.arange(1, 11))
        f.attrs["bin_ps"] = 64.0
    irf = read_irf(attr, expect_bin_ps=64.0, expect_period_ns=12.5)
    assert irf.period_ns is None and irf.counts.sum() == 55


@pytest.mark.parametrize(
    ("values", "problem"),
    [(np.zeros(8), "zero counts"), ([1.0, -1.0, 2.0], "negative"), ([1.0, np.nan], "NaN")],
)
def test_irf_bad_counts(tmp_path, values, problem):
    out = tmp_path / "bad_irf.h5"
    write_irf_h5(out, values, 16.0)
    with raises_input(problem, out):
        read_irf(out)


def test_irf_bad_files(tmp_path):
    no_counts = tmp_path / "no_counts.h5"
    with h5py.File(no_counts, "w") as f:
        f.create_dataset("irf", data=np.ones(4))
    with raises_input("no dataset 'counts'", no_counts):
        read_irf(no_counts)
    no_bin = tmp_path / "no_bin.h5"
    with h5py.File(no_bin, "w") as f:
        f.create_dataset("counts", data=np.ones(4))
    with raises_input("no 'bin_ps'", no_bin):
        read_irf(no_bin)
    long = tmp_path / "long.h5"
    write_irf_h5(long, np.ones(300), 64.0, 12.5)
    with raises_input("more than one period", long):
        read_irf(long)
    text = tmp_path / "irf.txt"
    text.write_text("1 2 3\n")
    with raises_input("neither a PicoQuant PTU nor an HDF5", text):
        read_irf(text)
    with raises_input("file not found", tmp_path / "absent.h5"):
        read_irf(tmp_path / "absent.h5")


# --- bad PTU input ------------------------------------------------------------------------------


def test_bad_ptu_inputs(tmp_path):
    with raises_input("file not found", tmp_path / "absent.ptu"):
        read_flim_image(tmp_path / "absent.ptu")
    garbage = tmp_path / "garbage.ptu"
    garbage.write_bytes(b"not a PTU file at all" * 10)
    with raises_input("not a PicoQuant PTU file", garbage):
        read_flim_image(garbage)
    good = tmp_path / "good.ptu"
    write_flim_ptu(good, np.ones((4, 4, 50), np.uint8), bin_ps=100.0, period_ns=5.0, pixel_um=1)
    data = good.read_bytes()
    short_header = tmp_path / "short_header.ptu"
    short_header.write_bytes(data[:300])
    with raises_input("not a PicoQuant PTU file, or its header is truncated", short_header):
        ptu_summary(short_header)
    short_records = tmp_path / "short_records.ptu"
    short_records.write_bytes(data[: len(data) - 400])
    with raises_input("truncated", short_records):
        read_flim_image(short_records)
    with raises_input("truncated", short_records):
        read_irf(short_records)
    empty = tmp_path / "empty.ptu"
    write_flim_ptu(empty, np.zeros((4, 4, 50), np.uint8), bin_ps=100.0, period_ns=5.0, pixel_um=1)
    with raises_input("no photons", empty):
        read_flim_image(empty)
    with raises_input("no photons", empty):
        read_irf(empty)
    with raises_input("pixel size override", good):
        read_flim_image(good, pixel_um=-1.0)
