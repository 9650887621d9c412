"""Provenance of every output: package version, inputs' hashes, settings and seed.

``reduced.h5``, ``posterior.nc`` and ``regression.nc`` carry the same flat root attributes
(:func:`provenance`):

``bayes_sc_version``
    The package version that wrote the file.
``inputs``
    JSON object: input path → SHA-256 of its bytes. For a manifest (``supercrystal.toml``) the
    inputs are the manifest itself and every file it references (:func:`input_files`),
    including the data files an EIGER master file links to, so that editing any of them
    changes the record.
``settings``
    JSON object of the settings that shape the output (model, sampler, chains, draws, ...;
    never display options such as progress bars), keys sorted.
``seed``
    The random seed (absent where the step draws no random numbers, e.g. reduction).
``created_utc``
    When the output was written (ISO 8601, UTC).

``bayes-sc batch`` compares ``inputs``, ``settings`` and ``seed`` of an existing output with
the ones it would use now (:func:`matches`) to decide whether a step is already done.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import __version__

CHUNK = 1 << 20  # bytes read at a time: hashing never holds a whole detector stack in memory
#: Keyword arguments that are no settings: progress display, and the seed (recorded on its own).
NOT_SETTINGS = frozenset({"progress", "seed"})
PROVENANCE_KEYS = ("bayes_sc_version", "inputs", "settings", "seed", "created_utc")


def file_hash(path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _linked_files(path: Path) -> list[Path]:
    """Files an HDF5 file reaches through external links under ``/entry/data`` (EIGER)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get("/entry/data")
            if not isinstance(group, h5py.Group):
                return []
            out = []
            for name in sorted(group):
                link = group.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    target = Path(link.filename)
                    out.append(target if target.is_absolute() else path.parent / target)
            return out
    except OSError:  # not HDF5: its own bytes are hashed, that is all
        return []


def _is_manifest(path: Path) -> bool:
    """Whether a TOML file is a dataset manifest (it has a modality table), not settings."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # let read_manifest say what is wrong with it
    return any(isinstance(data.get(k), dict) for k in ("xray", "flim", "pl"))


def input_files(source) -> list[Path]:
    """Every file an output made from ``source`` depends on.

    A manifest (a ``.toml`` with an ``[xray]``, ``[flim]`` or ``[pl]`` table) stands for
    itself, every file it references and, for each
    referenced HDF5 file, the data files it links to (an EIGER master's frame stacks); any
    other file stands for itself.

    Parameters
    ----------
    source
        ``supercrystal.toml``, ``reduced.h5``, a posterior...

    Returns
    -------
    list of pathlib.Path
        Resolved paths, the source first, without duplicates.
    """
    source = Path(source)
    files = [source]
    if source.suffix == ".toml" and _is_manifest(source):
        from .io.manifest import read_manifest

        man = read_manifest(source)
        for part in (man.xray, man.flim, man.pl):
            if part is None:
                continue
            for value in [*vars(part).values(), *getattr(part, "overrides", {}).values()]:
                if isinstance(value, Path):
                    files.append(value)
                    if value.suffix in (".h5", ".hdf5", ".nxs"):
                        files += _linked_files(value)
    seen, out = set(), []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def hash_inputs(paths: Iterable) -> dict[str, str]:
    """``{path: sha256}`` of each path (as a string, in the given order)."""
    return {str(p): file_hash(p) for p in paths}


def settings_record(**settings) -> dict:
    """The settings worth recording: display options dropped, paths as text, keys sorted.

    Parameters
    ----------
    **settings
        Keyword arguments a step was called with.

    Returns
    -------
    dict
        JSON-serialisable settings (anything else becomes its ``str``).
    """
    out = {}
    for key in sorted(settings):
        if key in NOT_SETTINGS:
            continue
        value = settings[key]
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return json.loads(json.dumps(out, default=str))


def provenance(inputs, settings: Mapping, seed: int | None = None) -> dict:
    """Flat attributes recording how an output was made (see the module docstring).

    Parameters
    ----------
    inputs
        Input files (each hashed), or an already computed ``{path: sha256}`` mapping.
    settings
        The settings that shape the output (see :func:`settings_record`).
    seed
        The random seed; ``None`` where the step draws no random numbers (no ``seed`` key).

    Returns
    -------
    dict
        ``bayes_sc_version``, ``inputs`` (JSON), ``settings`` (JSON), ``seed``,
        ``created_utc``: strings and an int, storable as HDF5 / netCDF attributes.
    """
    hashes = dict(inputs) if isinstance(inputs, Mapping) else hash_inputs(inputs)
    out = {
        "bayes_sc_version": __version__,
        "inputs": json.dumps(hashes, sort_keys=True),
        "settings": json.dumps(settings_record(**settings), sort_keys=True),
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    if seed is not None:
        out["seed"] = int(seed)
    return out


def step_provenance(sources, settings: Mapping, seed: int | None = None) -> dict:
    """:func:`provenance` of a step reading ``sources`` (each expanded by :func:`input_files`).

    Parameters
    ----------
    sources
        The step's input files (``None`` entries are ignored: optional inputs).
    settings
        Its keyword arguments (see :func:`settings_record`).
    seed
        Its random seed, or ``None``.
    """
    files = [f for s in sources if s is not None for f in input_files(s)]
    return provenance(files, settings, seed)


def _scalar(value):
    """An attribute as a plain value: netCDF writes numbers as 1-element arrays."""
    import numpy as np

    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    elif isinstance(value, np.generic):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else value


def read_attrs(path) -> dict:
    """Root attributes of an HDF5 or netCDF output, or ``{}`` if it cannot be read."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {k: _scalar(v) for k, v in f.attrs.items() if k in PROVENANCE_KEYS}
    except (OSError, KeyError):
        return {}


def matches(attrs: Mapping, inputs: Mapping[str, str], settings: Mapping, seed=None) -> bool:
    """Whether recorded provenance ``attrs`` name exactly these inputs, settings and seed.

    Parameters
    ----------
    attrs
        An output's attributes (e.g. :func:`read_attrs`).
    inputs
        Current ``{path: sha256}`` of the inputs.
    settings
        The settings the step would use now.
    seed
        The seed it would use now (``None``: the record must have none).
    """
    try:
        same_inputs = json.loads(attrs["inputs"]) == dict(inputs)
        same_settings = json.loads(attrs["settings"]) == settings_record(**settings)
    except (KeyError, TypeError, ValueError):
        return False
    recorded_seed = attrs.get("seed")
    same_seed = (recorded_seed is None) if seed is None else (
        recorded_seed is not None and int(recorded_seed) == int(seed)
    )  # fmt: skip
    return same_inputs and same_settings and same_seed
