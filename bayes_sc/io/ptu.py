"""PicoQuant PTU files: summary, FLIM image reading and writing (SPEC §4, §5 FLIM).

All decoding goes through ``ptufile``. Histograms cover exactly one laser period of
``n_bins = bins_in_period(period_ns, bin_ps)`` bins of width ``bin_ps``: the number of *whole*
bins in the period, ``floor(T / Δt)``, where a ratio within 1e-3 bin below an integer counts as
that integer (floating-point noise in the tags, e.g. ``T / Δt = 999.9999999``). Photons in the
incomplete bin at the end of the period (``t >= n_bins·Δt``; e.g. hazelnut: 132.18 bins per
period → 132 bins) are left out, as ptufile's ``decode_image(dtime=0)`` leaves them out; we pass
``dtime=n_bins`` explicitly so that ptufile's own ``floor`` cannot lose a whole bin to rounding.
``ptu_summary`` reports those left-out photons as ``photons_outside_period``.

Channels are the record's detector channel numbers (0-based), as in ptufile's ``C`` coordinate
and ``PtuFile.active_channels``. Image photons are those ptufile assigns to image pixels
(complete frames, no line retrace), summed over frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import ptufile

from ..errors import InputError, require_file
from .h5util import atomic_path

_ALL = slice(None, None, -1)  # ptufile selection: integrate the whole axis
_TOL_BINS = 1e-3
_HYDRAHARP2_T3 = int(ptufile.PtuRecordType.HydraHarp2T3)
_GENERIC_T3 = int(ptufile.PtuRecordType.GenericT3)


def bins_in_period(period_ns: float, bin_ps: float) -> int:
    """Number of whole TCSPC bins in one laser period.

    Parameters
    ----------
    period_ns
        Laser (sync) period [ns].
    bin_ps
        TCSPC bin width [ps].

    Returns
    -------
    int
        ``floor(period / bin)``, counting a ratio within 1e-3 bin below an integer as that integer.
    """
    return max(1, math.floor(period_ns * 1e3 / bin_ps + _TOL_BINS))


@dataclass
class FlimImage:
    """One detector channel of a T3 FLIM image, all frames summed.

    Attributes
    ----------
    counts
        Photon counts, shape (ny, nx, n_bins), uint32 [photons].
    bin_ps
        TCSPC bin width [ps].
    period_ns
        Laser period, 1 / sync rate [ns].
    pixel_um
        Image pixel size [µm]: the override, else the PTU's ``ImgHdr_PixResol``, else None.
    channel
        Detector channel the counts come from.
    photons
        Total photons in ``counts``.
    path
        The PTU file.
    """

    counts: np.ndarray
    bin_ps: float
    period_ns: float
    pixel_um: float | None
    channel: int
    photons: int
    path: Path

    @property
    def n_bins(self) -> int:
        """Number of TCSPC bins in one period."""
        return int(self.counts.shape[-1])


def _open(path: str | Path) -> tuple[Path, ptufile.PtuFile]:
    """Open a T3 PTU file (frames trimmed, channels and bins not), errors as InputError."""
    path = require_file(path)
    try:
        ptu = ptufile.PtuFile(path, trimdims="T")
    except Exception as exc:  # ptufile raises PqFileError, but also others on short headers
        raise InputError(
            path, f"not a PicoQuant PTU file, or its header is truncated ({exc})"
        ) from None
    try:
        if ptu.filesize - ptu.record_offset < 4 * ptu.number_records:
            got = (ptu.filesize - ptu.record_offset) // 4
            raise InputError(
                path, f"truncated: the header announces {ptu.number_records} records, {got} present"
            )
        if not ptu.is_t3:
            raise InputError(path, "is a T2 measurement (no TCSPC histograms); FLIM needs T3")
        if not ptu.tcspc_resolution > 0 or not ptu.global_resolution > 0:
            raise InputError(path, "has no valid TCSPC resolution or sync period in its tags")
    except BaseException:
        ptu.close()
        raise
    return path, ptu


def _timing(ptu: ptufile.PtuFile) -> tuple[float, float, int]:
    """Bin width [ps], period [ns] and whole bins per period of an open PTU file."""
    bin_ps = ptu.tcspc_resolution * 1e12
    period_ns = ptu.global_resolution * 1e9
    return bin_ps, period_ns, bins_in_period(period_ns, bin_ps)


def _decode(path: Path, what: str, func, *args, **kwargs) -> np.ndarray:
    """Call a ptufile decoder, turning its errors into InputError."""
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        raise InputError(path, f"ptufile cannot decode the {what} ({exc})") from None


def _channel_photons(path: Path, ptu: ptufile.PtuFile, n_bins: int) -> tuple[np.ndarray, int]:
    """Photons per detector channel inside one period, and the number outside it."""
    if ptu.is_image:
        nsel = len(ptu.shape) - 2
        sel = (*([_ALL] * nsel), None, slice(0, None, n_bins))
        groups = _decode(path, "image", ptu.decode_image, sel, dtype=np.uint64)
        groups = groups.reshape(groups.shape[-2], groups.shape[-1])
    else:
        groups = _decode(path, "histogram", ptu.decode_histogram, dtype=np.uint64)
    inside = groups[:, :1] if ptu.is_image else groups[:, :n_bins]
    inside = inside.sum(axis=1).astype(np.int64)
    return inside, int(groups.sum()) - int(inside.sum())


def _tag(ptu: ptufile.PtuFile, name: str, default=None):
    value = ptu.tags.get(name, default)
    return default if value is None else value


def ptu_summary(path: str | Path) -> dict:
    """What a PTU file holds, for ``bayes-sc info`` and for choosing how to read it.

    Parameters
    ----------
    path
        The PTU file.

    Returns
    -------
    dict
        JSON-serialisable: ``path``, ``record_type``, ``measurement`` ("T3"), ``submode``
        ("IMAGE", "POINT", ...), ``is_image``, ``shape`` [ny, nx] (None unless an image),
        ``n_frames`` (complete frames; None unless an image), ``n_planes``, ``n_channels``,
        ``channels`` (detector channels with photons), ``photons_per_channel`` (same order),
        ``photons`` (in the image, or in the histogram of a point measurement, inside one
        period), ``photons_outside_period`` (in the incomplete last bin, left out),
        ``photons_recorded`` (all photon records, retrace included), ``bin_ps`` [ps],
        ``period_ns`` [ns], ``sync_rate_hz`` [Hz], ``n_bins`` (whole bins per period, used),
        ``n_bins_ptufile`` (ptufile's ``number_bins_in_period``), ``pixel_um`` [µm] (or None),
        ``pixel_time_us`` [µs], ``acquisition_time_s`` [s], ``instrument``, ``software``,
        ``lasers``, ``comment``, ``created`` (ISO date or None).

    Raises
    ------
    InputError
        Missing, not a PTU, truncated or T2 file.
    """
    path, ptu = _open(path)
    with ptu:
        bin_ps, period_ns, n_bins = _timing(ptu)
        photons, outside = _channel_photons(path, ptu, n_bins)
        channels = [int(c) for c in np.flatnonzero(photons)]
        image = bool(ptu.is_image)
        res = _tag(ptu, "ImgHdr_PixResol")
        lasers = [str(v) for v in _tag(ptu, "UsrHeadName", []) if v]
        hw = " ".join(str(_tag(ptu, k, "")) for k in ("HW_Type", "HW_Version")).strip()
        sw = " ".join(str(_tag(ptu, k, "")) for k in ("CreatorSW_Name", "CreatorSW_Version"))
        return {
            "path": str(path),
            "record_type": ptu.record_type.name,
            "measurement": ptu.measurement_mode.name,
            "submode": ptu.measurement_submode.name,
            "is_image": image,
            "shape": [int(ptu.lines_in_frame), int(ptu.pixels_in_line)] if image else None,
            "n_frames": int(ptu.shape[0]) if image else None,
            "n_planes": int(ptu.number_planes),
            "n_channels": len(channels),
            "channels": channels,
            "photons_per_channel": [int(photons[c]) for c in channels],
            "photons": int(photons.sum()),
            "photons_outside_period": outside,
            "photons_recorded": int(ptu.number_photons),
            "bin_ps": bin_ps,
            "period_ns": period_ns,
            "sync_rate_hz": 1e9 / period_ns,
            "n_bins": n_bins,
            "n_bins_ptufile": int(ptu.number_bins_in_period),
            "pixel_um": float(res) if image and res and res > 0 else None,
            "pixel_time_us": float(ptu.pixel_time) * 1e6,
            "acquisition_time_s": float(ptu.acquisition_time),
            "instrument": hw or None,
            "software": sw.strip() or None,
            "lasers": lasers,
            "comment": ptu.comment or None,
            "created": None if ptu.datetime is None else ptu.datetime.isoformat(),
        }


def _require_image(path: Path, ptu: ptufile.PtuFile) -> None:
    if ptu.measurement_ndim == 1:
        raise InputError(path, "is a point measurement, not an image scan; give it as the IRF")
    if not ptu.is_image:
        sub = ptu.measurement_submode.name.lower()
        raise InputError(path, f"is a {sub} measurement, not a T3 image scan")
    if ptu.measurement_ndim == 4:
        raise InputError(path, f"is a z-stack of {ptu.number_planes} planes; give one image plane")


def _pick_channel(path: Path, photons: np.ndarray, channel: int | None) -> int:
    """The requested detector channel, checked, or the one with the most photons."""
    have = ", ".join(str(c) for c in np.flatnonzero(photons))
    if photons.sum() == 0:
        raise InputError(path, "contains no photons inside one laser period")
    if channel is None:
        return int(np.argmax(photons))
    if not isinstance(channel, int | np.integer) or not 0 <= channel < photons.size:
        raise InputError(
            path, f"detector channel {channel!r} does not exist (with photons: {have})"
        )
    if photons[channel] == 0:
        raise InputError(path, f"detector channel {channel} has no photons (with photons: {have})")
    return int(channel)


def read_flim_image(
    path: str | Path, *, channel: int | None = None, pixel_um: float | None = None
) -> FlimImage:
    """Read one detector channel of a T3 FLIM image scan, summed over frames.

    Parameters
    ----------
    path
        PTU file of a T3 image scan.
    channel
        Detector channel (0-based record channel); default: the one with the most photons.
    pixel_um
        Pixel size [µm] overriding the PTU's ``ImgHdr_PixResol``.

    Returns
    -------
    FlimImage
        Counts (ny, nx, n_bins) over one period (see the module notes on ``n_bins``).

    Raises
    ------
    InputError
        Missing, not a PTU, truncated or T2 file; a point measurement, line scan or z-stack;
        a channel that does not exist or has no photons; no photons at all.
    """
    if pixel_um is not None and not (np.isfinite(pixel_um) and pixel_um > 0):
        raise InputError(path, f"pixel size override {pixel_um!r} µm is not a positive number")
    path, ptu = _open(path)
    with ptu:
        _require_image(path, ptu)
        bin_ps, period_ns, n_bins = _timing(ptu)
        photons, _ = _channel_photons(path, ptu, n_bins)
        ch = _pick_channel(path, photons, channel)
        sel = (_ALL, None, None, ch, None)
        data = _decode(path, "image", ptu.decode_image, sel, dtime=n_bins, dtype=np.uint32)
        counts = np.ascontiguousarray(data.reshape(data.shape[1], data.shape[2], n_bins))
        if pixel_um is None:
            res = _tag(ptu, "ImgHdr_PixResol")
            pixel_um = float(res) if res and res > 0 else None
    return FlimImage(
        counts=counts,
        bin_ps=bin_ps,
        period_ns=period_ns,
        pixel_um=None if pixel_um is None else float(pixel_um),
        channel=ch,
        photons=int(counts.sum(dtype=np.uint64)),
        path=path,
    )


def _set_record_type(path: Path, old: int, new: int) -> None:
    """Rewrite the ``TTResultFormat_TTTRRecType`` tag value of a PTU header in place."""
    with open(path, "r+b") as fh:
        head = fh.read(1 << 16)
        at = head.find(b"TTResultFormat_TTTRRecType\0")
        if at < 0 or int.from_bytes(head[at + 40 : at + 48], "little") != old:
            raise RuntimeError(f"{path}: unexpected PTU header written by ptufile")
        fh.seek(at + 40)
        fh.write(new.to_bytes(8, "little"))


def write_flim_ptu(
    path: str | Path, counts, *, bin_ps: float, period_ns: float, pixel_um: float
) -> None:
    """Write a FLIM image as a real PTU T3 image scan (HydraHarp V2 T3 records).

    ptufile's writer encodes HydraHarp V2 T3 as ``GenericT3`` records, which have the same bit
    layout; the record type tag is then set to ``HydraHarp2T3`` (the instrument of the paper).
    Each photon gets its own sync period, so the file reproduces ``counts`` exactly but carries
    no real photon timing within a pixel.

    Parameters
    ----------
    path
        Output file; written under a temporary name and renamed at the end.
    counts
        Non-negative integer counts, shape (ny, nx, n_bins) [photons], with
        ``n_bins == bins_in_period(period_ns, bin_ps)``.
    bin_ps
        TCSPC bin width [ps].
    period_ns
        Laser period [ns] (sync rate = 1 / period).
    pixel_um
        Image pixel size [µm] (``ImgHdr_PixResol``).

    Raises
    ------
    ValueError
        Counts not a non-negative integer (ny, nx, n_bins) array, or their bins do not fill
        one period.
    """
    data = np.asarray(counts)
    if data.ndim != 3 or data.dtype.kind not in "iu" or (data.size and data.min() < 0):
        raise ValueError("counts must be a non-negative integer array (ny, nx, n_bins)")
    if not (bin_ps > 0 and period_ns > 0 and pixel_um > 0):
        raise ValueError("bin_ps, period_ns and pixel_um must be positive")
    n_bins = bins_in_period(period_ns, bin_ps)
    if data.shape[-1] != n_bins:
        raise ValueError(
            f"counts have {data.shape[-1]} bins, but one period of {period_ns} ns holds {n_bins} "
            f"bins of {bin_ps} ps"
        )
    if n_bins > 32768:
        raise ValueError(f"{n_bins} bins exceed the 32768 of HydraHarp T3 records")
    from .. import __version__

    with atomic_path(path) as tmp:
        ptufile.imwrite(
            tmp,
            data.astype(np.uint32),
            period_ns * 1e-9,
            bin_ps * 1e-12,
            record_type=ptufile.PtuRecordType.HydraHarp2T3,
            pixel_resolution=float(pixel_um),
            comment="simulated FLIM image (bayes_sc)",
            tags={"CreatorSW_Name": "bayes_sc", "CreatorSW_Version": __version__},
        )
        _set_record_type(tmp, _GENERIC_T3, _HYDRAHARP2_T3)
