"""Instrument response function (IRF) of a FLIM measurement (SPEC §4 ``[flim] irf``).

An IRF is read from
- a PTU T3 point measurement: ptufile's ``decode_histogram`` of one detector channel;
- a PTU T3 image scan: one channel summed over all pixels and frames;
- an HDF5 file with dataset ``counts (N,)`` and ``bin_ps`` (scalar dataset, or attribute of the
  file or of ``counts``), optional ``period_ns`` likewise.

PTU histograms are trimmed to one period of whole bins exactly as FLIM images are
(:func:`bayes_sc.io.ptu.bins_in_period`): photons in the incomplete last bin are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from .h5util import atomic_path, open_h5
from .ptu import _ALL, _channel_photons, _decode, _open, _pick_channel, _timing, bins_in_period

_RTOL = 1e-6


@dataclass
class Irf:
    """A measured IRF over (at most) one laser period.

    Attributes
    ----------
    counts
        IRF histogram, shape (n,), float64 [counts per bin].
    bin_ps
        Bin width [ps].
    period_ns
        Laser period [ns], or None when the file does not say.
    path
        The file it was read from.
    channel
        Detector channel of a PTU IRF; None for HDF5.
    """

    counts: np.ndarray
    bin_ps: float
    period_ns: float | None
    path: Path
    channel: int | None = None


def _read_ptu(path: Path, channel: int | None) -> Irf:
    path, ptu = _open(path)
    with ptu:
        bin_ps, period_ns, n_bins = _timing(ptu)
        photons, _ = _channel_photons(path, ptu, n_bins)
        ch = _pick_channel(path, photons, channel)
        if ptu.is_image:
            sel = (*([_ALL] * (len(ptu.shape) - 2)), ch, None)
            data = _decode(path, "image", ptu.decode_image, sel, dtime=n_bins, dtype=np.uint64)
            counts = data.reshape(n_bins)
        else:
            hist = _decode(path, "histogram", ptu.decode_histogram, dtype=np.uint64)
            counts = np.zeros(n_bins, np.uint64)
            row = hist[ch, :n_bins]
            counts[: row.size] = row
    return Irf(counts.astype(np.float64), bin_ps, period_ns, path, ch)


def _value(path: Path, f: h5py.File, name: str, required: bool) -> float | None:
    """A scalar from a dataset, a file attribute or an attribute of ``counts``."""
    sources = [f.get(name), f.attrs.get(name), f["counts"].attrs.get(name)]
    for value in sources:
        if value is None:
            continue
        if isinstance(value, h5py.Group):
            raise InputError(path, f"'{name}' is a group, not a number")
        if isinstance(value, h5py.Dataset):
            value = value[()]
        arr = np.asarray(value)
        if arr.size != 1 or arr.dtype.kind not in "iuf":
            raise InputError(path, f"'{name}' must be one number, got {arr.dtype} {arr.shape}")
        number = float(arr.reshape(()))
        if not (np.isfinite(number) and number > 0):
            raise InputError(path, f"'{name}' = {number} is not a positive number")
        return number
    if required:
        raise InputError(path, f"has no '{name}' (dataset or attribute)")
    return None


def _read_h5(path: Path) -> Irf:
    with open_h5(path) as f:
        if "counts" not in f or not isinstance(f["counts"], h5py.Dataset):
            raise InputError(path, "has no dataset 'counts' (an IRF .h5 needs counts (N,), bin_ps)")
        raw = f["counts"]
        if raw.ndim != 1 or raw.dtype.kind not in "iuf":
            raise InputError(
                path, f"'counts' must be a 1-D numeric array, got {raw.dtype} {raw.shape}"
            )
        counts = raw[()].astype(np.float64)
        bin_ps = _value(path, f, "bin_ps", True)
        period_ns = _value(path, f, "period_ns", False)
    if period_ns is not None and counts.size > bins_in_period(period_ns, bin_ps):
        raise InputError(
            path,
            f"IRF has {counts.size} bins of {bin_ps:g} ps, more than one period of "
            f"{period_ns:g} ns ({bins_in_period(period_ns, bin_ps)} bins)",
        )
    return Irf(counts, bin_ps, period_ns, path)


def _check_counts(irf: Irf) -> None:
    c = irf.counts
    if c.size == 0:
        raise InputError(irf.path, "IRF has no bins")
    if not np.all(np.isfinite(c)):
        raise InputError(irf.path, "IRF counts contain NaN or infinite values")
    if np.any(c < 0):
        raise InputError(irf.path, "IRF counts contain negative values")
    if c.sum() <= 0:
        raise InputError(irf.path, "IRF has zero counts")


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= _RTOL * max(abs(a), abs(b))


def read_irf(
    path: str | Path,
    *,
    expect_bin_ps: float | None = None,
    expect_period_ns: float | None = None,
    channel: int | None = None,
) -> Irf:
    """Read a measured IRF from a PTU (point or image) or HDF5 file.

    Parameters
    ----------
    path
        PTU file (T3 point measurement or image scan) or HDF5 file (see module notes).
    expect_bin_ps
        Bin width of the FLIM image [ps]; the IRF's must agree (relative tolerance 1e-6).
    expect_period_ns
        Laser period of the FLIM image [ns]; checked when the IRF file gives one.
    channel
        Detector channel of a PTU IRF; default: the one with the most counts.

    Returns
    -------
    Irf
        Counts over one period of whole bins (PTU) or as stored (HDF5).

    Raises
    ------
    InputError
        Missing or unreadable file, no/bad counts (zero total, negative, NaN), bad channel,
        or bin width / period differing from the expected ones.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "is not a file")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic == b"PQTTTR\0\0":
        irf = _read_ptu(path, channel)
    elif h5py.is_hdf5(path):
        if channel is not None:
            raise InputError(path, "a detector channel applies to PTU IRFs only, not to HDF5")
        irf = _read_h5(path)
    else:
        raise InputError(path, "is neither a PicoQuant PTU nor an HDF5 file; cannot read an IRF")
    _check_counts(irf)
    if expect_bin_ps is not None and not _close(irf.bin_ps, expect_bin_ps):
        raise InputError(
            path,
            f"IRF bin width {irf.bin_ps:.6g} ps differs from the FLIM image's "
            f"{expect_bin_ps:.6g} ps",
        )
    if (
        expect_period_ns is not None
        and irf.period_ns is not None
        and not _close(irf.period_ns, expect_period_ns)
    ):
        raise InputError(
            path,
            f"IRF laser period {irf.period_ns:.6g} ns differs from the FLIM image's "
            f"{expect_period_ns:.6g} ns",
        )
    return irf


def write_irf_h5(path: str | Path, counts, bin_ps: float, period_ns: float | None = None) -> None:
    """Write an IRF as HDF5 (``counts`` float64, ``bin_ps`` and ``period_ns`` scalars).

    Parameters
    ----------
    path
        Output file; written under a temporary name and renamed at the end.
    counts
        IRF histogram, shape (N,) [counts per bin].
    bin_ps
        Bin width [ps].
    period_ns
        Laser period [ns]; omitted from the file when None.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1:
        raise ValueError(f"IRF counts must be 1-D, got shape {counts.shape}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("counts", data=counts)
            f.create_dataset("bin_ps", data=float(bin_ps))
            if period_ns is not None:
                f.create_dataset("period_ns", data=float(period_ns))
