"""PL spectra HDF5 files (SPEC §4): ``wavelength_nm (W,)``, ``counts (N, W)``, ``x_um``,
``y_um (N,)`` and an optional crystal outline ``outline_um (M, 2)``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from .h5util import atomic_path, open_h5


@dataclass(frozen=True)
class PlSpectra:
    """Spectra at N points: counts [counts per channel] on W wavelength channels [nm]."""

    path: Path
    wavelength_nm: np.ndarray
    counts: np.ndarray
    x_um: np.ndarray
    y_um: np.ndarray
    outline_um: np.ndarray | None

    @property
    def n_points(self) -> int:
        return self.counts.shape[0]


def read_pl_spectra(path: str | Path) -> PlSpectra:
    """Read and validate a PL spectra file; every problem names the file and dataset."""
    path = Path(path)
    with open_h5(path) as f:
        missing = [k for k in ("wavelength_nm", "counts", "x_um", "y_um") if k not in f]
        if missing:
            raise InputError(path, f"missing dataset(s) {', '.join(missing)}")
        lam = np.asarray(f["wavelength_nm"][()], dtype=float)
        counts = np.asarray(f["counts"][()])
        x = np.asarray(f["x_um"][()], dtype=float)
        y = np.asarray(f["y_um"][()], dtype=float)
        outline = np.asarray(f["outline_um"][()], dtype=float) if "outline_um" in f else None
    if lam.ndim != 1 or counts.ndim != 2 or counts.shape[1] != lam.size:
        raise InputError(
            path,
            f"counts must be (N, W) with W = len(wavelength_nm) = {lam.size}, got {counts.shape}",
        )
    if x.shape != (counts.shape[0],) or y.shape != (counts.shape[0],):
        raise InputError(path, f"x_um and y_um must have shape ({counts.shape[0]},)")
    if not np.all(np.isfinite(counts)) or not np.all(np.isfinite(lam)):
        raise InputError(path, "counts or wavelength_nm contain NaN or infinite values")
    if np.any(np.diff(lam) == 0) or lam.min() <= 0:
        raise InputError(path, "wavelength_nm must be positive and strictly monotonic")
    if outline is not None and (outline.ndim != 2 or outline.shape[1] != 2 or len(outline) < 3):
        raise InputError(path, f"outline_um must be (M >= 3, 2), got {outline.shape}")
    return PlSpectra(path, lam, counts, x, y, outline)


def write_pl_spectra(path, wavelength_nm, counts, x_um, y_um, outline_um=None) -> None:
    """Write a PL spectra file (temporary name, then rename)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f["wavelength_nm"] = np.asarray(wavelength_nm, dtype=float)
        f["wavelength_nm"].attrs["unit"] = "nm"
        f["counts"] = np.asarray(counts)
        f["counts"].attrs["unit"] = "counts per channel"
        f["x_um"] = np.asarray(x_um, dtype=float)
        f["y_um"] = np.asarray(y_um, dtype=float)
        if outline_um is not None:
            f["outline_um"] = np.asarray(outline_um, dtype=float)
