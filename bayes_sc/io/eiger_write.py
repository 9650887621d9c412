"""Writer of DECTRIS EIGER-style NeXus (NXmx) master + data files.

Used by the simulator and the tests. The layout follows real DECTRIS files (SPEC §4): a master
``<stem>_master.h5`` whose ``/entry/data/data_000001…`` are external links to
``<stem>_data_000001.h5:/entry/data/data``, each a ``(n, rows, cols)`` stack compressed with
bitshuffle-LZ4, one frame per chunk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from bayes_sc.physics.geometry import DetectorGeometry

#: EIGER X 4M layout: 4 x 2 modules of 514 x 1030 pixels [pixel].
EIGER4M_SHAPE = (2167, 2070)
_EIGER4M_GAP_ROWS = ((514, 551), (1065, 1102), (1616, 1653))  # half-open [start, stop)
_EIGER4M_GAP_COLS = ((1030, 1040),)


def eiger4m_gap_mask(shape: tuple[int, int] = EIGER4M_SHAPE) -> np.ndarray:
    """NXmx pixel mask with bit 0 ("gap") set on the EIGER X 4M module gaps.

    Parameters
    ----------
    shape
        Detector shape (rows, cols) [pixel]. The 4M gap pattern (10-pixel vertical gap at
        columns 1030–1039; 37-pixel horizontal gaps at rows 514–550, 1065–1101, 1616–1652) is
        clipped to it, so a smaller shape gets only the gaps that fall inside it.

    Returns
    -------
    numpy.ndarray
        uint32 (rows, cols): 1 on gap pixels, 0 elsewhere.
    """
    mask = np.zeros(shape, dtype=np.uint32)
    for start, stop in _EIGER4M_GAP_ROWS:
        mask[start:stop, :] |= 1
    for start, stop in _EIGER4M_GAP_COLS:
        mask[:, start:stop] |= 1
    return mask


def data_file_name(master_path: str | Path, index: int) -> str:
    """Name of the ``index``-th (1-based) data file of a master file.

    DECTRIS convention: ``scan_master.h5`` -> ``scan_data_000001.h5``; a master without the
    ``_master`` suffix, ``scan.h5``, gets ``scan_data_000001.h5``.
    """
    stem = Path(master_path).stem
    stem = stem.removesuffix("_master")
    return f"{stem}_data_{index:06d}.h5"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _put(group: h5py.Group, name: str, value, units: str | None = None) -> None:
    dset = group.create_dataset(name, data=value)
    if units is not None:
        dset.attrs["units"] = units


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    grp = parent.create_group(name)
    grp.attrs["NX_class"] = nx_class
    return grp


def _write_data_file(path, frames_iter, n, first, shape, dtype, saturation, bad) -> None:
    """Write ``n`` frames from ``frames_iter`` to ``path`` (via a temporary name)."""
    tmp = _tmp_name(path)
    try:
        with h5py.File(tmp, "w") as f:
            entry = _group(f, "entry", "NXentry")
            data = _group(entry, "data", "NXdata")
            dset = data.create_dataset(
                "data",
                shape=(n, *shape),
                dtype=dtype,
                chunks=(1, *shape),
                **hdf5plugin.Bitshuffle(cname="lz4"),
            )
            dset.attrs["image_nr_low"] = np.int32(first)
            dset.attrs["image_nr_high"] = np.int32(first + n - 1)
            for i in range(n):
                try:
                    frame = np.asarray(next(frames_iter))
                except StopIteration:
                    raise ValueError(f"frames ran out after {first - 1 + i} frames") from None
                if frame.shape != tuple(shape):
                    raise ValueError(f"frame {first - 1 + i} has shape {frame.shape}, not {shape}")
                if not np.issubdtype(frame.dtype, np.integer):
                    raise ValueError(f"frame {first - 1 + i} is {frame.dtype}, not integer counts")
                if frame.size and frame.min() < 0:
                    raise ValueError(f"frame {first - 1 + i} has negative counts")
                out = np.minimum(frame, saturation).astype(dtype)
                out[bad] = saturation
                dset[i] = out
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_master(path, names, *, geometry, pixel_mask, bit_depth, count_time_s, n_frames):
    tmp = _tmp_name(path)
    rows, cols = pixel_mask.shape
    pixel_m = geometry.pixel_size_mm * 1e-3
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["creator"] = "bayes_sc.io.eiger_write"
            entry = _group(f, "entry", "NXentry")
            _put(entry, "definition", "NXmx")
            data = _group(entry, "data", "NXdata")
            for i, name in enumerate(names, start=1):
                data[f"data_{i:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
            instrument = _group(entry, "instrument", "NXinstrument")
            beam = _group(instrument, "beam", "NXbeam")
            _put(beam, "incident_wavelength", geometry.wavelength_nm * 10.0, "angstrom")
            det = _group(instrument, "detector", "NXdetector")
            _put(det, "description", "Dectris EIGER-like detector (written by bayes_sc)")
            _put(det, "beam_center_x", float(geometry.beam_center_x), "pixel")
            _put(det, "beam_center_y", float(geometry.beam_center_y), "pixel")
            _put(det, "detector_distance", geometry.distance_mm * 1e-3, "m")
            _put(det, "x_pixel_size", pixel_m, "m")
            _put(det, "y_pixel_size", pixel_m, "m")
            if count_time_s is not None:
                _put(det, "count_time", float(count_time_s), "s")
                _put(det, "frame_time", float(count_time_s), "s")
            _put(det, "bit_depth_image", np.uint32(bit_depth))
            _put(det, "bit_depth_readout", np.uint32(bit_depth))
            _put(det, "saturation_value", np.uint32(2**bit_depth - 1))
            spec = _group(det, "detectorSpecific", "NXcollection")
            spec.create_dataset(
                "pixel_mask", data=pixel_mask.astype(np.uint32), compression="gzip", chunks=True
            )
            _put(spec, "nimages", np.uint64(n_frames))
            _put(spec, "ntrigger", np.uint64(1))
            _put(spec, "x_pixels_in_detector", np.uint32(cols))
            _put(spec, "y_pixels_in_detector", np.uint32(rows))
            _put(spec, "compression", "bslz4")
            _put(spec, "bit_depth_image", np.uint32(bit_depth))
            _put(spec, "saturation_value", np.uint32(2**bit_depth - 1))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_eiger(
    master_path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    geometry: DetectorGeometry,
    pixel_mask: np.ndarray,
    bit_depth: int,
    count_time_s: float | None,
    frames_per_file: int,
    n_frames: int,
) -> list[Path]:
    """Write a scan as an EIGER master file plus bitshuffle-LZ4 data files, streaming.

    Parameters
    ----------
    master_path
        Master file to create, e.g. ``xray/scan_master.h5``; data files go next to it
        (see :func:`data_file_name`).
    frames
        Iterable of ``n_frames`` integer arrays (rows, cols) [counts] in scan order; consumed
        one at a time, never held together. Values above ``2**bit_depth - 1`` are clipped to
        it (the detector saturates), and pixels with ``pixel_mask & 0xFFFF != 0`` are written
        as ``2**bit_depth - 1``, as a DECTRIS detector does.
    geometry
        Detector geometry; stored as beam centre [pixel], distance [m], pixel size [m] and
        incident wavelength [Å].
    pixel_mask
        NXmx pixel mask, uint32 (rows, cols) [bit flags], non-zero = bad.
    bit_depth
        Image bit depth [bit]: 16 stores uint16, 17–32 store uint32.
    count_time_s
        Exposure per frame [s], or ``None`` to leave it out.
    frames_per_file
        Frames per data file (at P10 often the points of the fast scan axis).
    n_frames
        Total number of frames.

    Returns
    -------
    list of pathlib.Path
        The master file followed by the data files.

    Notes
    -----
    Each file is written under a temporary name in the same folder and renamed when complete,
    so no partial file is left under a final name; on error, files of this call are removed.
    """
    master_path = Path(master_path)
    pixel_mask = np.asarray(pixel_mask)
    if pixel_mask.ndim != 2:
        raise ValueError(f"pixel_mask must be 2-D (rows, cols), got shape {pixel_mask.shape}")
    if not 1 <= bit_depth <= 32:
        raise ValueError(f"bit_depth must be 1..32, got {bit_depth}")
    if frames_per_file < 1 or n_frames < 1:
        raise ValueError("frames_per_file and n_frames must be >= 1")
    dtype = np.uint16 if bit_depth <= 16 else np.uint32
    saturation = 2**bit_depth - 1
    bad = (pixel_mask.astype(np.uint32) & 0xFFFF) != 0
    shape = pixel_mask.shape
    frames_iter = iter(frames)
    written: list[Path] = []
    try:
        names = []
        for index, first in enumerate(range(0, n_frames, frames_per_file), start=1):
            n = min(frames_per_file, n_frames - first)
            path = master_path.with_name(data_file_name(master_path, index))
            _write_data_file(path, frames_iter, n, first + 1, shape, dtype, saturation, bad)
            written.append(path)
            names.append(path.name)
        if next(frames_iter, None) is not None:
            raise ValueError(f"frames yields more than n_frames = {n_frames} frames")
        _write_master(
            master_path,
            names,
            geometry=geometry,
            pixel_mask=pixel_mask,
            bit_depth=bit_depth,
            count_time_s=count_time_s,
            n_frames=n_frames,
        )
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return [master_path, *written]
