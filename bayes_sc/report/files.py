"""The report's files: reading and checking the input, and the staged output folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import xarray as xr

from ..errors import InputError, require_file

#: Values of the ``model`` attribute the report understands.
MODELS = ("xray", "flim", "pl", "joint", "regression")


def read_posterior(path) -> tuple[xr.DataTree, str]:
    """Open ``path`` fully into memory and return the tree and its model kind.

    Raises
    ------
    InputError
        Missing file, not a netCDF DataTree, no ``posterior`` group (or one without ``chain``
        and ``draw``), or a ``model`` attribute the report does not know.
    """
    path = require_file(path)
    try:
        with xr.open_datatree(path) as tree:
            tree = tree.load()
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        msg = " ".join(str(err).split())[:200]
        raise InputError(path, f"not a readable netCDF/HDF5 DataTree ({msg})") from None
    if "posterior" not in tree.children:
        groups = ", ".join(tree.children) or "none"
        raise InputError(
            path, f"no 'posterior' group (groups: {groups}): not a posterior.nc or regression.nc"
        )
    post = tree["posterior"]
    if not {"chain", "draw"} <= set(post.dims) or not post.data_vars:
        raise InputError(path, "the 'posterior' group holds no draws (dims chain, draw)")
    model = tree.attrs.get("model")
    if model is None:
        model = _infer_model(post.to_dataset())
        if model is None:
            raise InputError(
                path,
                "no 'model' attribute and no SPEC §7 variables to tell the "
                f"model by; expected model one of {', '.join(MODELS)}",
            )
    if model not in MODELS:
        raise InputError(
            path,
            f"unknown model {model!r} (attribute 'model'); the report knows {', '.join(MODELS)}",
        )
    return tree, str(model)


def _infer_model(post: xr.Dataset) -> str | None:
    if "beta" in post and "response" in post.dims:
        return "regression"
    kinds = [
        m
        for m, d in (("xray", "xray_pixel"), ("flim", "flim_pixel"), ("pl", "pl_point"))
        if d in post.dims
    ]
    return kinds[0] if len(kinds) == 1 else ("joint" if kinds else None)


def default_outdir(posterior) -> Path:
    """``<posterior's folder>/<posterior stem>_report``."""
    posterior = Path(posterior)
    return posterior.parent / f"{posterior.stem}_report"


def check_outdir(outdir: Path, inputs) -> Path:
    """Refuse an output folder that is a file, holds something other than a report, or holds
    (or is) an input."""
    outdir = Path(outdir)
    res = outdir.resolve()
    for p in inputs:
        if p is not None and (Path(p).resolve() == res or res in Path(p).resolve().parents):
            raise InputError(outdir, f"the report folder would replace the input {p}")
    if outdir.exists() or outdir.is_symlink():
        if not outdir.is_dir():
            raise InputError(outdir, "exists and is not a folder")
        if any(outdir.iterdir()) and not (outdir / "report.md").is_file():
            raise InputError(
                outdir,
                "exists and holds other files (no report.md): refusing to "
                "replace it; choose another -o DIR",
            )
    return outdir


@contextmanager
def staged_folder(outdir: Path):
    """Yield a temporary sibling folder; on success it replaces ``outdir`` (rename)."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".tmp", dir=outdir.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = None
        if outdir.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{outdir.name}.", suffix=".old", dir=outdir.parent)
            )
            os.replace(outdir, old / "report")
        os.replace(tmp, outdir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
