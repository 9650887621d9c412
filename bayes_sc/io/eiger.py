"""Reader of DECTRIS EIGER / NeXus NXmx scans (SPEC §4).

Reads a master file whose ``/entry/data/data_000001…`` are (external links to) frame stacks
``(n, rows, cols)`` compressed with bitshuffle-LZ4, or a bare DECTRIS data file holding
``/entry/data/data``. Frames are read one per HDF5 slice, so memory stays at one frame.
Every problem with the input is reported as one :class:`~bayes_sc.errors.InputError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4 HDF5 filters with h5py)
import numpy as np

from bayes_sc.errors import InputError
from bayes_sc.io.poni import read_poni
from bayes_sc.physics.geometry import DetectorGeometry

GEOMETRY_KEYS = ("beam_center_x", "beam_center_y", "distance_mm", "wavelength_nm", "pixel_size_mm")
_TO_MM = {"m": 1e3, "meter": 1e3, "mm": 1.0, "um": 1e-3, "µm": 1e-3}
_TO_NM = {"angstrom": 0.1, "a": 0.1, "å": 0.1, "nm": 1.0, "m": 1e9}
_MASTER = {  # our key -> (dataset under /entry/instrument, units table, default units)
    "beam_center_x": ("detector/beam_center_x", None, None),
    "beam_center_y": ("detector/beam_center_y", None, None),
    "distance_mm": ("detector/detector_distance", _TO_MM, "m"),
    "wavelength_nm": ("beam/incident_wavelength", _TO_NM, "angstrom"),
    "pixel_size_mm": ("detector/x_pixel_size", _TO_MM, "m"),
}
_DATA_NAME = re.compile(r"^data(_\d+)?$")
_FILTER_NAMES = {32008: "bitshuffle", 32001: "blosc", 32004: "lz4", 32015: "zstd"}
_DET = "/entry/instrument/detector"


def _open_h5(path: Path, what: str) -> h5py.File:
    """Open an HDF5 file read-only, turning every failure into an InputError."""
    if not path.exists():
        raise InputError(path, f"{what} not found")
    if path.is_dir():
        raise InputError(path, f"{what} is a folder, not a file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        kind = "truncated or corrupt HDF5 file" if h5py.is_hdf5(path) else "not an HDF5 file"
        detail = " ".join(str(exc).split())  # HDF5 messages can span lines
        raise InputError(path, f"cannot open {what}: {kind} ({detail})") from None


def _scalar(f: h5py.File, name: str):
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset) or obj.size != 1:
        return None, None
    units = obj.attrs.get("units")
    units = units.decode() if isinstance(units, bytes) else units
    value = np.asarray(obj[()]).reshape(-1)[0]
    value = value.decode() if isinstance(value, bytes) else value
    return (value.item() if isinstance(value, np.generic) else value), units


def _master_geometry(path: Path, f: h5py.File) -> dict:
    """Geometry keys found in the master file, converted to SPEC units (mm, nm, pixel)."""
    found: dict = {}
    for key, (name, table, default) in _MASTER.items():
        value, units = _scalar(f, "/entry/instrument/" + name)
        if value is None:
            continue
        try:
            found[key] = float(value)
        except (TypeError, ValueError):
            raise InputError(path, f"{name} is not a number: {value!r}") from None
        if table is not None:
            unit = (units or default).strip().lower()
            if unit not in table:
                raise InputError(path, f"{name} has unknown units {units!r}")
            found[key] *= table[unit]
    y_pix, units = _scalar(f, _DET + "/y_pixel_size")
    if "pixel_size_mm" in found and y_pix is not None:
        y_mm = float(y_pix) * _TO_MM.get((units or "m").strip().lower(), 1e3)
        if abs(y_mm - found["pixel_size_mm"]) > 1e-6 * found["pixel_size_mm"]:
            raise InputError(path, "non-square pixels (x_pixel_size != y_pixel_size)")
    return found


def _bit_depth(f: h5py.File, dtype: np.dtype) -> int:
    for name in ("bit_depth_image", "detectorSpecific/bit_depth_image"):
        value, _ = _scalar(f, f"{_DET}/{name}")
        if value is not None and 0 < int(value) <= 8 * dtype.itemsize:
            return int(value)
    return 8 * dtype.itemsize


class XrayFrames:
    """Frames and metadata of one EIGER scan; open it with :func:`open_xray`.

    Attributes
    ----------
    path : pathlib.Path
        The master (or bare data) file.
    n_frames : int
        Frames in the scan, over all data files.
    frame_shape : tuple of int
        (rows, cols) [pixel].
    dtype : numpy.dtype
        Stored integer type of the frames.
    bit_depth : int
        Image bit depth [bit].
    saturation_value : int
        ``2**bit_depth - 1`` [counts]: never data (masked or saturated).
    geometry : DetectorGeometry
        Geometry after overrides (manifest > PONI > master file).
    count_time_s : float or None
        Exposure per frame [s], when the master file gives it.
    pixel_mask : numpy.ndarray
        bool (rows, cols), True = bad pixel: ``detectorSpecific/pixel_mask & 0xFFFF != 0``.
        Without a stored mask (e.g. a bare data file) the pixels equal to
        ``saturation_value`` in frame 0 — where a DECTRIS detector writes gaps and bad
        pixels — are taken as masked.
    n_masked_pixels : int
        Number of True pixels in ``pixel_mask``.
    """

    def __init__(self, path: str | Path, overrides: dict | None = None):
        self.path = Path(path)
        self._cache: tuple[Path, h5py.File] | None = None
        f = _open_h5(self.path, "EIGER master file")
        try:
            self._read_layout(f)
            self.bit_depth = _bit_depth(f, self.dtype)
            self.saturation_value = 2**self.bit_depth - 1
            self.geometry = self._geometry(_master_geometry(self.path, f), overrides or {})
            value, _ = _scalar(f, _DET + "/count_time")
            self.count_time_s = None if value is None else float(value)
            mask = f.get(_DET + "/detectorSpecific/pixel_mask")
            if isinstance(mask, h5py.Dataset):
                if mask.shape != self.frame_shape:
                    raise InputError(
                        self.path,
                        f"pixel_mask shape {mask.shape} differs from the frame shape "
                        f"{self.frame_shape}",
                    )
                self.pixel_mask = self._mask_flags(np.asarray(mask[()]))
            else:
                self.pixel_mask = None
        finally:
            f.close()
        if self.pixel_mask is None:
            try:
                self.pixel_mask = self.frame(0) == self.saturation_value
            except BaseException:
                self.close()
                raise
        self.n_masked_pixels = int(self.pixel_mask.sum())

    def _mask_flags(self, mask: np.ndarray) -> np.ndarray:
        """bool bad-pixel map from the NXmx ``pixel_mask`` (integer bit flags, SPEC §4)."""
        where = "detectorSpecific/pixel_mask"
        if mask.dtype.kind == "b":
            return mask.astype(bool)
        if mask.dtype.kind == "f":
            bad = int((~np.isfinite(mask)).sum())
            if bad:
                raise InputError(
                    self.path,
                    f"{where} holds {bad} NaN or infinite values; it must be integer flags "
                    "(uint32, non-zero = bad pixel)",
                )
            if np.any(mask != np.round(mask)) or np.any(mask < 0):
                raise InputError(
                    self.path,
                    f"{where} holds non-integer or negative values; expected uint32 flags",
                )
        elif mask.dtype.kind not in "iu":
            raise InputError(self.path, f"{where} has type {mask.dtype}; expected uint32 flags")
        elif mask.dtype.kind == "i" and np.any(mask < 0):
            raise InputError(self.path, f"{where} holds negative values; expected uint32 flags")
        return (mask.astype(np.uint64) & 0xFFFF) != 0

    def _read_layout(self, f: h5py.File) -> None:
        """Find the data stacks: ``self._stacks = [(file, dataset path, n_frames), ...]``."""
        group = f.get("/entry/data")
        if not isinstance(group, h5py.Group):
            raise InputError(self.path, "no /entry/data group (not an EIGER/NXmx file)")
        names = sorted(
            (n for n in group if _DATA_NAME.match(n)), key=lambda n: (len(n), int(n[5:] or 0))
        )
        if not names:
            raise InputError(self.path, "no data_000001... or data datasets in /entry/data")
        self._stacks: list[tuple[Path, str, int]] = []
        shape = dtype = None
        for name in names:
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                target = Path(link.filename)
                if not target.is_absolute():
                    target = self.path.parent / target
                if not target.exists():
                    raise InputError(
                        self.path,
                        f"/entry/data/{name} links to missing data file {target.name} "
                        f"(looked in {target.parent})",
                    )
                with _open_h5(target, "EIGER data file") as df:
                    dset = df.get(link.path)
                    if not isinstance(dset, h5py.Dataset):
                        raise InputError(target, f"has no dataset {link.path}")
                    info = self._check_stack(target, link.path, dset)
            else:
                dset = group.get(name)
                if not isinstance(dset, h5py.Dataset):
                    raise InputError(self.path, f"/entry/data/{name} is not a dataset")
                info = self._check_stack(self.path, dset.name, dset)
            if shape is not None and (info[0], info[1]) != (shape, dtype):
                raise InputError(
                    self.path,
                    f"inconsistent frame shapes or dtypes: /entry/data/{name} holds {info[0]} "
                    f"{info[1]} frames, the earlier data files {shape} {dtype}",
                )
            shape, dtype = info[0], info[1]
            self._stacks.append(info[2])
        self.frame_shape: tuple[int, int] = shape
        self.dtype: np.dtype = dtype
        self._starts = np.cumsum([0] + [n for _, _, n in self._stacks])
        self.n_frames = int(self._starts[-1])
        if self.n_frames == 0:
            raise InputError(self.path, "the data files hold no frames")

    @staticmethod
    def _check_stack(path: Path, name: str, dset: h5py.Dataset):
        if dset.ndim != 3:
            raise InputError(path, f"{name} has shape {dset.shape}; expected (n, rows, cols)")
        if not np.issubdtype(dset.dtype, np.integer):
            raise InputError(path, f"{name} holds {dset.dtype}; expected integer counts")
        plist = dset.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if not h5py.h5z.filter_avail(code):
                label = _FILTER_NAMES.get(code, "unknown")
                raise InputError(
                    path,
                    f"{name} needs HDF5 compression filter {code} ({label}), which is not "
                    "available: install/import hdf5plugin",
                )
        return tuple(dset.shape[1:]), dset.dtype, (path, name, int(dset.shape[0]))

    def _geometry(self, master: dict, overrides: dict) -> DetectorGeometry:
        unknown = set(overrides) - set(GEOMETRY_KEYS) - {"poni"}
        if unknown:
            raise InputError(self.path, f"unknown geometry override(s): {sorted(unknown)}")
        values = dict(master)
        if overrides.get("poni") is not None:
            values.update(read_poni(overrides["poni"], overrides.get("pixel_size_mm")))
        values.update({k: v for k, v in overrides.items() if k != "poni" and v is not None})
        missing = [k for k in GEOMETRY_KEYS if k not in values]
        if missing:
            keys = ", ".join(f"{k} = ..." for k in missing)
            raise InputError(
                self.path,
                f"missing geometry {', '.join(missing)} (not in the file); give them in the "
                f'manifest\'s [xray] table ({keys}) or as poni = "file.poni"',
            )
        for k in GEOMETRY_KEYS:
            try:
                values[k] = float(values[k])
            except (TypeError, ValueError):
                raise InputError(
                    self.path, f"geometry {k} is not a number: {values[k]!r}"
                ) from None
            if not np.isfinite(values[k]) or (k not in GEOMETRY_KEYS[:2] and values[k] <= 0):
                raise InputError(self.path, f"geometry {k} = {values[k]} is not valid")
        return DetectorGeometry(**{k: values[k] for k in GEOMETRY_KEYS})

    def _dataset(self, stack: int) -> h5py.Dataset:
        path, name, _ = self._stacks[stack]
        if self._cache is None or self._cache[0] != path:
            self._close_cache()
            self._cache = (path, _open_h5(path, "EIGER data file"))
        return self._cache[1][name]

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (0-based, scan order) as stored: (rows, cols) of ``dtype`` [counts]."""
        i = int(i)
        if i < 0:
            i += self.n_frames
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range (n_frames = {self.n_frames})")
        stack = int(np.searchsorted(self._starts, i, side="right")) - 1
        dset = self._dataset(stack)
        try:
            return dset[i - int(self._starts[stack])]
        except OSError as exc:
            raise InputError(
                self._stacks[stack][0],
                f"cannot read frame {i} (corrupt data or filter): {' '.join(str(exc).split())}",
            ) from None

    def frame_location(self, i: int) -> tuple[Path, str, int]:
        """(data file, dataset path, index in that dataset) of frame ``i`` (scan order)."""
        stack = int(np.searchsorted(self._starts, int(i), side="right")) - 1
        path, name, _ = self._stacks[stack]
        return path, name, int(i) - int(self._starts[stack])

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Yield frames ``start .. stop-1`` one at a time in scan order, across data files."""
        stop = self.n_frames if stop is None else min(int(stop), self.n_frames)
        for i in range(max(int(start), 0), stop):
            yield self.frame(i)

    def _close_cache(self) -> None:
        if self._cache is not None:
            self._cache[1].close()
            self._cache = None

    def close(self) -> None:
        """Close the data file kept open for reading."""
        self._close_cache()

    def __enter__(self) -> XrayFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.n_frames


def open_xray(path: str | Path, overrides: dict | None = None) -> XrayFrames:
    """Open an EIGER master file (or a bare data file) for frame-by-frame reading.

    Parameters
    ----------
    path
        Master file, or a bare data file with ``/entry/data/data``.
    overrides
        Geometry keys ``beam_center_x``, ``beam_center_y`` [pixel], ``distance_mm`` [mm],
        ``wavelength_nm`` [nm], ``pixel_size_mm`` [mm] and ``poni`` (path of a pyFAI PONI
        file). Precedence: these keys > PONI > master file. ``None`` values are ignored.

    Returns
    -------
    XrayFrames
        Usable as a context manager.

    Raises
    ------
    InputError
        Missing, truncated or non-HDF5 file, dangling external link, no data, wrong ndim,
        inconsistent frame shapes, missing compression filter, or missing geometry.
    """
    return XrayFrames(path, overrides)


def validate_frame_count(frames: XrayFrames | int, scan_shape, path: str | Path) -> None:
    """Raise :class:`InputError` unless the scan has ``ny * nx`` frames.

    Parameters
    ----------
    frames
        The opened scan, or its number of frames.
    scan_shape
        (ny, nx) scan points.
    path
        File named in the error (the master file or the manifest).
    """
    n = frames.n_frames if isinstance(frames, XrayFrames) else int(frames)
    ny, nx = (int(v) for v in scan_shape)
    if n != ny * nx:
        raise InputError(
            path,
            f"scan_shape [{ny}, {nx}] needs {ny * nx} frames but the data hold {n} frames",
        )
