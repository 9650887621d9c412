"""Material presets: the TOML files of the top-level ``models/`` folder (shipped in the wheel).

A preset holds the constants and priors of one material (value, unit and reason per entry)
and the simulator's defaults. Code never hard-codes these numbers.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import InputError

NON_MATERIAL = {"regression"}  # TOMLs in models/ that are settings, not material presets


def preset_dir() -> Path:
    """Folder holding the shipped presets (``bayes_sc/presets`` in a wheel, ``models/`` in a
    source checkout)."""
    shipped = resources.files("bayes_sc") / "presets"
    if shipped.is_dir():
        return Path(str(shipped))
    return Path(__file__).resolve().parent.parent / "models"


def available_presets() -> list[str]:
    """Names of the shipped material presets (``regression.toml`` holds the regression's
    settings, not a material)."""
    return sorted(p.stem for p in preset_dir().glob("*.toml") if p.stem not in NON_MATERIAL)


def _merge(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s entries in place of its own, table by table."""
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merge(base[key], value) if both else value
    return out


def load_regression_settings(path=None) -> dict:
    """The regression's priors and settings (``models/regression.toml``), shared by the
    two-stage regression and the joint model. A user's file ``path`` overrides only what it
    sets: the shipped file fills in the rest (a settings file written for an older version
    lacks the newer keys)."""
    default = preset_dir() / "regression.toml"
    settings = {}
    for file in [default] + ([Path(path)] if path is not None else []):
        try:
            settings = _merge(settings, tomllib.loads(file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise InputError(file, f"cannot read the regression settings: {err}") from None
    return settings


def load_preset(name_or_path: str | Path, *, base_dir: Path | None = None) -> dict:
    """Load a material preset by name (``models/<name>.toml``) or by TOML path.

    Parameters
    ----------
    name_or_path
        Preset name such as ``"cspbbr2cl"`` or a path to a TOML file (relative paths are
        resolved against ``base_dir``).
    base_dir
        Folder relative paths are resolved against (the manifest's folder).

    Raises
    ------
    InputError
        Unknown material, unreadable file or invalid TOML.
    """
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
    else:
        path = preset_dir() / f"{text.lower()}.toml"
        if not path.is_file():
            raise InputError(
                None,
                f"unknown material {text!r}: known presets are {', '.join(available_presets())}"
                " (or give a path to a TOML file)",
            )
    path = path.resolve()
    if not path.is_file():
        raise InputError(path, "material preset file not found")
    return _read_preset(path, path.read_text())


@cache  # keyed on the text too: a preset edited within one session is read afresh
def _read_preset(path: Path, text: str) -> dict:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"invalid TOML: {exc}") from None
    for key in ("material", "constants", "priors"):
        if key not in data:
            raise InputError(path, f"material preset lacks the [{key}] table")
    per = data.get("xray", {}).get("background_per", "window")
    if per not in ("window", "pixel"):
        raise InputError(path, f'[xray] background_per must be "window" or "pixel", not {per!r}')
    merge = data.setdefault("xray", {}).setdefault("unsummarised_merge", {})
    for region in ("saxs", "waxs"):
        f = merge.setdefault(region, [1, 1])
        if not (isinstance(f, list) and len(f) == 2 and all(type(v) is int and v >= 1 for v in f)):
            raise InputError(
                path, f"[xray] unsummarised_merge.{region} must be two integers >= 1 (n_q, n_phi)"
            )
    for key in ("target_accept", "target_accept_small_scan"):
        ta = data["xray"].setdefault(key, 0.9)
        if not (isinstance(ta, float) and 0.0 < ta < 1.0):
            raise InputError(path, f"[xray] {key} must be a number in (0, 1), not {ta!r}")
    small = data["xray"].setdefault("small_scan_pixels", 0)
    if not (isinstance(small, int) and small >= 0):
        raise InputError(path, f"[xray] small_scan_pixels must be an integer >= 0, not {small!r}")
    _fill_field_rho(path, data)
    data["_path"] = str(path)
    return data


def _fill_field_rho(path: Path, data: dict) -> None:
    """Give every spatial field (``priors.<name>.field``) its prior on the BYM2 structured
    fraction ρ: its own ``field.rho`` table, else the preset's ``[spatial] field_rho``."""
    fields = [p["field"] for p in data["priors"].values() if isinstance(p, dict) and "field" in p]
    default = data.get("spatial", {}).get("field_rho")
    for spec in fields:
        rho = spec.setdefault("rho", default)
        if rho is None:
            raise InputError(path, "material preset lacks [spatial] field_rho (the prior on the "
                             "structured fraction of its spatial fields)")  # fmt: skip
        if rho.get("dist") != "Beta" or not (rho.get("alpha", 0) > 0 and rho.get("beta", 0) > 0):
            raise InputError(path, f"field_rho must be a Beta prior with alpha > 0 and beta > 0, "
                             f"got {rho}")  # fmt: skip
