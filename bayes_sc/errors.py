"""The one exception type users see for bad input (SPEC §3: one clear line, non-zero exit)."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad or unreadable input, reported as ``<file>: <problem>``.

    Parameters
    ----------
    path
        The file (or manifest key's file) the problem is in; ``None`` when no file is involved.
    problem
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


def require_file(path) -> Path:
    """``path`` as a Path if it is an existing regular file, else one clear ``InputError``."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.is_file():
        raise InputError(path, "is not a file")
    return path
