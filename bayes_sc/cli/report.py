"""The ``report`` sub-command (SPEC §3, §7): diagnostics, tables, maps and profiles."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from . import command, log_to_stderr


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "posterior",
        metavar="POSTERIOR",
        type=Path,
        help="posterior.nc (fit: xray, flim, pl or joint) or regression.nc (regress)",
    )
    p.add_argument(
        "-o",
        "--outdir",
        metavar="DIR",
        type=Path,
        default=None,
        help="report folder (default: <POSTERIOR stem>_report next to POSTERIOR); an "
        "existing folder is replaced only if it holds a previous report",
    )
    p.add_argument(
        "--ci-prob",
        type=float,
        default=0.9,
        metavar="P",
        help="probability of the credible intervals and bands (default: 0.9)",
    )
    p.add_argument(
        "--reduced",
        metavar="REDUCED",
        type=Path,
        default=None,
        help="reduced.h5 the posterior was fitted to: overlay the paper's "
        "least-squares per-pixel values on the profiles",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")


@command("report", "diagnostics, credible-interval tables, maps and profiles", _report_args)
def _report(args: argparse.Namespace) -> int:
    import logging

    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window
    if not 0 < args.ci_prob < 1:
        raise InputError(None, f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    level = logging.WARNING if args.quiet else logging.INFO
    log_to_stderr("report", logging.WARNING)
    logging.getLogger("bayes_sc.report").setLevel(level)
    from ..report import write_report

    out = write_report(args.posterior, args.outdir, ci_prob=args.ci_prob, reduced=args.reduced)
    print(f"wrote {out}")
    return 0
