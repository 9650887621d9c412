"""HDF5 helpers shared by the readers and writers: safe open, output checks, atomic write."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import h5py

from ..errors import InputError, require_file

#: errno values only writing can give (a read-only file system, a full disk or quota)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
_NO_SPACE = ("No space left on device", "Disk quota exceeded", "errno = 28")


def open_h5(path: str | Path) -> h5py.File:
    """Open an HDF5 file read-only, turning h5py's errors into one clear ``InputError``."""
    path = require_file(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"truncated or not an HDF5 file ({exc})") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def check_output(final: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Refuse an output name that cannot be a new file, before any work is done.

    Parameters
    ----------
    final
        The output file to be written.
    inputs
        Files the command reads (``None`` entries are skipped): the output must not be one of
        them, so an input is never overwritten.

    Returns
    -------
    Path
        ``final`` as a Path.

    Raises
    ------
    InputError
        ``final`` is an existing folder, one of ``inputs``, or lies under a path that is a file.
    """
    final = Path(final)
    if final.is_dir():
        raise InputError(final, "the output is an existing folder; give a file name")
    if final.exists():
        for p in inputs:
            if p is not None and Path(p).exists() and _same_file(final, Path(p)):
                raise InputError(
                    final, "the output would overwrite an input file; choose another name"
                )
    for parent in final.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(
                    final, f"cannot create the output: {parent} is a file, not a folder"
                )
            break
    return final


def _write_error(final: Path, tmp: Path, exc: OSError) -> InputError | None:
    """The InputError for an OSError met while writing ``final`` (None: not a write error)."""
    text = " ".join(str(exc).split())
    names = {str(n) for n in (exc.filename, getattr(exc, "filename2", None)) if n is not None}
    ours = bool(names & {str(tmp), str(final)})
    no_space = exc.errno in (errno.ENOSPC, errno.EDQUOT) or any(s in text for s in _NO_SPACE)
    if not (ours or no_space or exc.errno in _WRITE_ERRNOS):
        return None  # e.g. an input that cannot be read: its own error says so
    reason = exc.strerror or text
    if no_space and not exc.strerror:
        reason = "No space left on device"
    return InputError(
        final, f"cannot write the output ({reason}) in {final.parent}; nothing was written"
    )


@contextlib.contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    On any exception (Ctrl-C included) the temporary file is removed, so no partial file is
    ever left under the requested name (nor a stray temporary one). ``final`` must not be an
    existing folder. Failures to write the output — an unwritable or read-only folder, a full
    disk (``ENOSPC``), a failed rename — are reported as one :class:`InputError` naming
    ``final``, not the temporary file.
    """
    final = check_output(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    except OSError as exc:
        reason = exc.strerror or " ".join(str(exc).split())
        raise InputError(final, f"cannot write the output in {final.parent} ({reason})") from None
    os.close(fd)
    tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        err = _write_error(final, tmp, exc)
        if err is None:
            raise
        raise err from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
