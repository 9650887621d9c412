"""The bit-plane binning of bitshuffle-LZ4 chunks equals the plain per-pixel binning."""

import struct
from pathlib import Path

import bitshuffle
import numpy as np
import pytest

from bayes_sc.errors import InputError
from bayes_sc.io.eiger_fast import RawChunk
from bayes_sc.reduce import bitplane
from bayes_sc.reduce.frames import Binner

pytestmark = pytest.mark.skipif(not bitplane.AVAILABLE, reason="bitshuffle's decoders not found")


def chunk_of(frame: np.ndarray, block_elems: int = 0) -> RawChunk:
    """The chunk the HDF5 bitshuffle-LZ4 filter would store for ``frame``."""
    if block_elems == 0:  # bitshuffle's default: 8 KiB blocks
        block_elems = 8192 // frame.itemsize
    body = bitshuffle.compress_lz4(frame, block_elems)
    head = struct.pack(">QI", frame.nbytes, block_elems * frame.itemsize)
    data = np.frombuffer(head + body.tobytes(), np.uint8)
    return RawChunk(data, frame.size, frame.dtype, block_elems, Path("frame.h5"), 0)


def plain(binner: Binner, frame: np.ndarray):
    """NumPy reference: valid values summed per bin; invalid in-bin pixels listed."""
    pb = binner.pixel_bin.astype(np.int64)
    valid = frame < binner.saturation
    counts = np.bincount(pb[valid], frame[valid].astype(np.int64), binner.n_bins + 1)
    excluded = np.flatnonzero(~valid & (pb != binner.n_bins))
    return counts[: binner.n_bins].astype(np.uint32), excluded


def make_binner(rng, n_pixels, n_bins, saturation, frac_in=0.8):
    pixel_bin = np.sort(rng.integers(0, n_bins, n_pixels))  # runs of pixels, as on a detector
    pixel_bin[rng.random(n_pixels) > frac_in] = -1
    return Binner(pixel_bin, n_bins, saturation)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
@pytest.mark.parametrize("n_pixels", [8192, 70001, 123_457])  # whole blocks; a short tail
@pytest.mark.parametrize("mean", [0.05, 0.5, 30.0])  # sparse, photon-counting, dense
def test_bitplane_equals_plain_binning(rng, dtype, n_pixels, mean):
    top = np.iinfo(dtype).max
    binner = make_binner(rng, n_pixels, 997, top)
    frame = np.minimum(rng.poisson(mean, n_pixels), top - 1).astype(dtype)
    frame[rng.choice(n_pixels, 40, replace=False)] = top  # gaps / bad pixels, some in bins
    want_counts, want_excluded = plain(binner, frame)
    got = binner(0, chunk_of(frame))
    np.testing.assert_array_equal(got.counts, want_counts)
    np.testing.assert_array_equal(got.excluded, want_excluded)
    # and the decoded path agrees with both
    np.testing.assert_array_equal(binner(0, chunk_of(frame).decode()).counts, want_counts)


def test_saturation_below_the_type_maximum(rng):
    """A saturation value that is not a power of two: values just under it are counted."""
    n = 50_000
    binner = make_binner(rng, n, 300, 199_997, frac_in=1.0)
    frame = rng.poisson(0.3, n).astype(np.uint32)
    frame[[10, 20, 30, 40]] = [199_996, 199_997, 262_143, 131_072]
    got = binner(0, chunk_of(frame))
    want_counts, want_excluded = plain(binner, frame)
    np.testing.assert_array_equal(got.counts, want_counts)
    np.testing.assert_array_equal(got.excluded, [20, 30])
    np.testing.assert_array_equal(got.excluded, want_excluded)


def test_non_default_block_size(rng):
    frame = rng.poisson(0.4, 40_000).astype(np.uint32)
    binner = make_binner(rng, frame.size, 100, 2**32 - 1)
    got = binner(0, chunk_of(frame, block_elems=512))
    np.testing.assert_array_equal(got.counts, plain(binner, frame)[0])


def test_all_pixels_invalid_is_flagged_not_dropped(rng):
    n = 20_000
    binner = make_binner(rng, n, 50, 2**16 - 1)
    frame = np.full(n, 2**16 - 1, np.uint16)
    got = binner(3, chunk_of(frame))
    assert got.frame_excluded and got.counts.sum() == 0


@pytest.mark.parametrize("cut", [13, 500, -3])
def test_truncated_chunk_is_a_clear_error(rng, cut):
    frame = rng.poisson(1.0, 30_000).astype(np.uint32)
    binner = make_binner(rng, frame.size, 100, 2**32 - 1)
    c = chunk_of(frame)
    bad = RawChunk(c.data[:cut], c.n_pixels, c.dtype, c.block_elems, c.path, 7)
    with pytest.raises(InputError, match="frame.h5.*frame 7: corrupt"):
        binner(7, bad)


REAL = Path(__file__).parents[2] / "shared/data/eiger/hdf5plugin_eiger4m_bitshuffle.h5"


@pytest.mark.parametrize("saturation", [2**32 - 1, 300])
def test_real_eiger_chunk(rng, saturation):
    """The DECTRIS-written frame, read as its stored chunk, bins as the decoded frame does."""
    if not REAL.exists():
        pytest.skip(f"shared test data absent: {REAL} (needs the ../shared folder)")
    from bayes_sc.io.eiger import open_xray
    from bayes_sc.io.eiger_fast import FrameReader

    overrides = dict(
        beam_center_x=1030.0, beam_center_y=1100.0, distance_mm=412.0, wavelength_nm=0.0898,
        pixel_size_mm=0.075,
    )  # fmt: skip
    with open_xray(REAL, overrides) as xf, FrameReader(xf) as reader:
        chunk = reader.read_chunk(0)
        assert isinstance(chunk, RawChunk)
        frame = chunk.decode()
        mask = xf.pixel_mask.reshape(-1)
    pixel_bin = np.sort(rng.integers(0, 5000, frame.size))
    pixel_bin[mask] = -1
    binner = Binner(pixel_bin, 5000, saturation)
    got = binner(0, chunk)
    want_counts, want_excluded = plain(binner, frame)
    np.testing.assert_array_equal(got.counts, want_counts)
    np.testing.assert_array_equal(got.excluded, want_excluded)
    assert got.counts.sum() > 0


def test_more_invalid_pixels_than_the_pass_lists(rng):
    """Beyond MAX_LISTED excluded pixels the list is recounted from the decoded frame."""
    n = 300_000
    binner = make_binner(rng, n, 500, 2**16 - 1, frac_in=0.9)
    frame = rng.poisson(0.5, n).astype(np.uint16)
    frame[rng.choice(n, n // 2, replace=False)] = 2**16 - 1
    want_counts, want_excluded = plain(binner, frame)
    assert want_excluded.size > 65536
    got = binner(0, chunk_of(frame))
    np.testing.assert_array_equal(got.counts, want_counts)
    np.testing.assert_array_equal(got.excluded, want_excluded)
