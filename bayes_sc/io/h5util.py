"""HDF5 helpers shared by the readers and writers: safe open, atomic write."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import h5py

from ..errors import InputError, require_file


def open_h5(path: str | Path) -> h5py.File:
    """Open an HDF5 file read-only, turning h5py's errors into one clear ``InputError``."""
    path = require_file(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"truncated or not an HDF5 file ({exc})") from None


@contextlib.contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    On any exception (Ctrl-C included) the temporary file is removed, so no partial file is
    ever left under the requested name.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
