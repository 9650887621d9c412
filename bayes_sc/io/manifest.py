"""The dataset manifest ``supercrystal.toml`` (SPEC §4): parsed, validated, paths resolved.

Every error names the manifest file and the offending key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..presets import load_preset

GEOMETRY_KEYS = ("beam_center_x", "beam_center_y", "distance_mm", "wavelength_nm", "pixel_size_mm")


@dataclass(frozen=True)
class XrayManifest:
    """The ``[xray]`` table: files resolved, scan shape (ny, nx), step (dy, dx) [µm]."""

    master: Path
    scan_shape: tuple[int, int]
    step_um: tuple[float, float]
    background: Path | None = None
    overrides: dict = field(default_factory=dict)  # geometry keys and optional "poni" (Path)


@dataclass(frozen=True)
class FlimManifest:
    """The ``[flim]`` table: PTU image, optional IRF, channel and pixel size [µm] overrides."""

    ptu: Path
    irf: Path | None = None
    channel: int | None = None
    pixel_um: float | None = None


@dataclass(frozen=True)
class PlManifest:
    """The ``[pl]`` table: the spectra HDF5 file."""

    spectra: Path


@dataclass(frozen=True)
class Manifest:
    """One supercrystal's dataset (SPEC §4)."""

    path: Path
    name: str
    material: str
    preset: dict
    xray: XrayManifest | None
    flim: FlimManifest | None
    pl: PlManifest | None

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate ``supercrystal.toml``.

    Raises
    ------
    InputError
        Missing file, invalid TOML, missing or ill-typed keys, unknown material, or a
        referenced file that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "manifest file not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(path, "not a text (TOML) file") from None
    t = _Table(path, data, "")
    base = path.parent
    name = t.get("name", str, default=path.parent.name)
    material = t.get("material", str, required=True)
    try:
        preset = load_preset(material, base_dir=base)
    except InputError as exc:
        raise InputError(path, f"key 'material': {exc}") from None
    known = {"name", "material", "xray", "flim", "pl"}
    t.reject_unknown(known)
    xray = _read_xray(t.sub("xray"), base) if "xray" in data else None
    flim = _read_flim(t.sub("flim"), base) if "flim" in data else None
    pl = _read_pl(t.sub("pl"), base) if "pl" in data else None
    if xray is None and flim is None and pl is None:
        raise InputError(path, "manifest has none of the tables [xray], [flim], [pl]")
    return Manifest(
        path=path, name=name, material=material, preset=preset, xray=xray, flim=flim, pl=pl
    )


def _read_xray(t: _Table, base: Path) -> XrayManifest:
    master = t.file("master", base)
    background = t.file("background", base, required=False)
    shape = t.get("scan_shape", list, required=True)
    if len(shape) != 2 or not all(isinstance(v, int) and v > 0 for v in shape):
        t.fail("scan_shape", f"must be two positive integers [ny, nx], got {shape!r}")
    step = t.get("step_um", list, required=True)
    if len(step) != 2 or not all(isinstance(v, int | float) and v > 0 for v in step):
        t.fail("step_um", f"must be two positive numbers [dy, dx] in µm, got {step!r}")
    overrides = {}
    for key in GEOMETRY_KEYS:
        value = t.get(key, float, default=None)
        if value is not None:
            if key != "beam_center_x" and key != "beam_center_y" and value <= 0:
                t.fail(key, f"must be positive, got {value}")
            overrides[key] = float(value)
    poni = t.file("poni", base, required=False)
    if poni is not None:
        overrides["poni"] = poni
    t.reject_unknown({"master", "background", "scan_shape", "step_um", "poni", *GEOMETRY_KEYS})
    return XrayManifest(
        master=master,
        scan_shape=(int(shape[0]), int(shape[1])),
        step_um=(float(step[0]), float(step[1])),
        background=background,
        overrides=overrides,
    )


def _read_flim(t: _Table, base: Path) -> FlimManifest:
    ptu = t.file("ptu", base)
    irf = t.file("irf", base, required=False)
    channel = t.get("channel", int, default=None)
    if channel is not None and channel < 0:
        t.fail("channel", f"must be >= 0, got {channel}")
    pixel_um = t.get("pixel_um", float, default=None)
    if pixel_um is not None and pixel_um <= 0:
        t.fail("pixel_um", f"must be positive (µm), got {pixel_um}")
    t.reject_unknown({"ptu", "irf", "channel", "pixel_um"})
    return FlimManifest(ptu=ptu, irf=irf, channel=channel, pixel_um=pixel_um)


def _read_pl(t: _Table, base: Path) -> PlManifest:
    spectra = t.file("spectra", base)
    t.reject_unknown({"spectra"})
    return PlManifest(spectra=spectra)


class _Table:
    """A TOML table with typed, error-naming accessors."""

    def __init__(self, path: Path, data: dict, prefix: str):
        self.path, self.data, self.prefix = path, data, prefix

    def fail(self, key: str, problem: str):
        raise InputError(self.path, f"key '{self.prefix}{key}': {problem}")

    def sub(self, key: str) -> _Table:
        value = self.data[key]
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
        return _Table(self.path, value, f"{self.prefix}{key}.")

    def get(self, key, typ, *, required=False, default=None):
        if key not in self.data:
            if required:
                self.fail(key, "is required but missing")
            return default
        value = self.data[key]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or isinstance(value, bool):
            self.fail(key, f"must be of type {typ.__name__}, got {value!r}")
        return value

    def file(self, key, base: Path, *, required=True) -> Path | None:
        value = self.get(key, str, required=required)
        if value is None:
            return None
        p = Path(value)
        p = p if p.is_absolute() else base / p
        if not p.exists():
            self.fail(key, f"file not found: {p}")
        return p

    def reject_unknown(self, known):
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            self.fail(unknown[0], f"unknown key (known keys: {', '.join(sorted(known))})")
