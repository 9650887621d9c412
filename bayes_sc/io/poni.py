"""Reader of pyFAI PONI geometry files (versions 1, 2 and 2.1).

A PONI file holds ``key: value`` lines. pyFAI measures the point of normal incidence
(``Poni1`` along rows, ``Poni2`` along columns) [m] from the *corner* of pixel (0, 0), whereas
SPEC §5 puts the *centre* of pixel (0, 0) at (0, 0); hence ``beam_center = poni / pixel - 0.5``.
Only a detector normal to the beam is supported (``Rot1 = Rot2 = Rot3 = 0``), for which the
point of normal incidence is the direct-beam position.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from bayes_sc.errors import InputError

#: Rotations [rad] below this magnitude count as zero.
ROTATION_TOLERANCE_RAD = 1e-9

#: pyFAI detector orientations whose pixel indexing matches ours (3 is pyFAI's default).
_SUPPORTED_ORIENTATIONS = (0, 3)


def _parse_lines(path: Path, text: str) -> dict[str, str]:
    """``key: value`` pairs of a PONI file (comments and blank lines skipped)."""
    items: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise InputError(path, f"line {n} is not a 'key: value' pair of a PONI file: {raw!r}")
        items[key.strip().lower()] = value.strip()
    return items


def _float(path: Path, items: dict[str, str], key: str, default: float | None = None) -> float:
    if key.lower() not in items:
        if default is not None:
            return default
        raise InputError(path, f"PONI file has no '{key}' entry")
    try:
        value = float(items[key.lower()])
    except ValueError:
        raise InputError(
            path, f"PONI entry '{key}' is not a number: {items[key.lower()]!r}"
        ) from None
    if not math.isfinite(value):
        raise InputError(path, f"PONI entry '{key}' is not finite: {value}")
    return value


def _named_detector_pixels(path: Path, name: str, config: dict) -> tuple[float, float]:
    """Pixel sizes [m] of a detector known to pyFAI by name (needs pyFAI installed)."""
    try:
        import pyFAI.detectors  # optional: only for PONI files naming a detector model
    except ImportError:
        raise InputError(
            path,
            f"PONI file names detector {name!r} without pixel sizes; install pyFAI to look it "
            "up, or give pixel_size_mm in the manifest",
        ) from None
    try:
        det = pyFAI.detectors.detector_factory(name, config or None)
    except Exception as exc:  # pyFAI raises assorted errors for unknown names
        raise InputError(path, f"pyFAI does not know detector {name!r}: {exc}") from None
    return float(det.pixel1), float(det.pixel2)


def _pixel_sizes(
    path: Path, items: dict[str, str], fallback_mm: float | None
) -> tuple[float, float]:
    """Pixel sizes (along rows, along columns) [m] from a version-1 or version-2 PONI."""
    if "pixelsize1" in items or "pixelsize2" in items:  # version 1
        return _float(path, items, "PixelSize1"), _float(path, items, "PixelSize2")
    config: dict = {}
    if "detector_config" in items:
        try:
            config = json.loads(items["detector_config"]) or {}
        except json.JSONDecodeError as exc:
            raise InputError(
                path, f"PONI entry 'Detector_config' is not valid JSON: {exc}"
            ) from None
        if not isinstance(config, dict):
            raise InputError(path, "PONI entry 'Detector_config' is not a JSON object")
    orientation = config.get("orientation")
    if orientation is not None and int(orientation) not in _SUPPORTED_ORIENTATIONS:
        raise InputError(
            path,
            f"detector orientation {orientation} is not supported (only pyFAI's default "
            "orientation 3, origin at pixel (0, 0))",
        )
    if "pixel1" in config and "pixel2" in config:
        return float(config["pixel1"]), float(config["pixel2"])
    if fallback_mm is not None:
        return fallback_mm * 1e-3, fallback_mm * 1e-3
    name = items.get("detector", "")
    if name and name.lower() != "detector":
        return _named_detector_pixels(path, name, config)
    raise InputError(
        path, "PONI file gives no pixel size (PixelSize1/2 or Detector_config pixel1/2)"
    )


def read_poni(path: str | Path, pixel_size_mm: float | None = None) -> dict:
    """Read a pyFAI PONI file into this package's geometry keys.

    Parameters
    ----------
    path
        PONI file (pyFAI ``poni_version`` 1, 2 or 2.1).
    pixel_size_mm
        Pixel size [mm] to use when the file gives none (e.g. a manifest override).

    Returns
    -------
    dict
        ``distance_mm`` [mm], ``beam_center_x``, ``beam_center_y`` [pixel, SPEC §5: pixel
        (0, 0) centred at 0], ``pixel_size_mm`` [mm] and, when the file has a ``Wavelength``,
        ``wavelength_nm`` [nm].

    Raises
    ------
    InputError
        Missing or unreadable file, missing entries, non-square pixels, or any non-zero
        rotation (only a detector normal to the beam is supported).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "PONI file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read PONI file: {exc}") from None
    items = _parse_lines(path, text)
    if "poni_version" in items:
        version = items["poni_version"]
        if version.split(".")[0] not in ("1", "2"):
            raise InputError(path, f"unsupported PONI version {version} (known: 1, 2, 2.1)")

    rotations = {k: _float(path, items, k, default=0.0) for k in ("Rot1", "Rot2", "Rot3")}
    tilted = {k: v for k, v in rotations.items() if abs(v) > ROTATION_TOLERANCE_RAD}
    if tilted:
        listed = ", ".join(f"{k} = {v:g} rad" for k, v in tilted.items())
        raise InputError(
            path,
            f"non-zero detector rotation ({listed}); only a detector normal to the beam "
            "is supported",
        )

    pixel1, pixel2 = _pixel_sizes(path, items, pixel_size_mm)
    if pixel1 <= 0 or pixel2 <= 0:
        raise InputError(path, f"pixel sizes must be positive, got {pixel1} m, {pixel2} m")
    if abs(pixel1 - pixel2) > 1e-6 * max(pixel1, pixel2):
        raise InputError(path, f"non-square pixels ({pixel1} m x {pixel2} m) are not supported")
    distance = _float(path, items, "Distance")
    if distance <= 0:
        raise InputError(path, f"Distance must be positive, got {distance} m")

    out = {
        "distance_mm": distance * 1e3,
        "beam_center_x": _float(path, items, "Poni2") / pixel2 - 0.5,
        "beam_center_y": _float(path, items, "Poni1") / pixel1 - 0.5,
        "pixel_size_mm": pixel1 * 1e3,
    }
    if "wavelength" in items:
        wavelength = _float(path, items, "Wavelength")
        if wavelength <= 0:
            raise InputError(path, f"Wavelength must be positive, got {wavelength} m")
        out["wavelength_nm"] = wavelength * 1e9
    return out
