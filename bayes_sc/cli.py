"""The ``bayes-sc`` command line (SPEC §3).

Sub-commands live in :data:`COMMANDS`: each is registered with :func:`command`, which names it,
gives its one-line help and the function adding its arguments; the decorated handler takes the
parsed arguments and returns the exit status. Bad input never shows a traceback: an
:class:`~bayes_sc.errors.InputError` or an ``OSError`` while reading or writing prints one line
``bayes-sc <command>: error: <message>`` on stderr and exits with status 2; Ctrl-C exits with 130.
Heavy modules are imported inside the handlers, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import InputError

PROG = "bayes-sc"
EXIT_INPUT = 2
EXIT_INTERRUPT = 130


@dataclass(frozen=True)
class Command:
    """One sub-command: name, one-line help, argument setup and handler (returns the status)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Registered sub-commands, in the order ``--help`` lists them.
COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated handler as sub-command ``name``.

    Parameters
    ----------
    name
        Sub-command name, e.g. ``"info"``.
    help
        One-line description for ``bayes-sc --help`` (also the sub-command's description).
    add_arguments
        Adds the sub-command's arguments to its parser.
    """

    def decorate(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = Command(name, help, add_arguments, run)
        return run

    return decorate


# --- argument types -----------------------------------------------------------------------------

_SCAN = re.compile(r"([0-9]+)[xX]([0-9]+)")


def scan_shape(text: str) -> tuple[int, int]:
    """Parse ``NYxNX`` (e.g. ``25x25``) into ``(ny, nx)``, both positive integers."""
    match = _SCAN.fullmatch(text)
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(
            f"expected NYxNX with two positive integers, e.g. 25x25; got {text!r}"
        )
    return int(match[1]), int(match[2])


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def _seed(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}")
    return int(text)


# --- sub-commands -------------------------------------------------------------------------------


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", metavar="MANIFEST", type=Path, help="supercrystal.toml")
    p.add_argument("--json", action="store_true", help="print one JSON object (SPEC §4.1)")


@command("info", "what a dataset holds: frames, geometry, mask, FLIM and IRF, PL", _info_args)
def _info(args: argparse.Namespace) -> int:
    from .io.dataset import dataset_info, format_info

    info = dataset_info(args.manifest)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _simulate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("outdir", metavar="OUTDIR", type=Path, help="folder to write the dataset to")
    p.add_argument(
        "--preset",
        default="cspbbr2cl",
        metavar="NAME",
        help="material preset (models/NAME.toml) or path to a preset TOML (default: cspbbr2cl)",
    )
    p.add_argument(
        "--scan",
        type=scan_shape,
        default=(8, 8),
        metavar="NYxNX",
        help="X-ray scan points, rows x columns, e.g. 25x25 (default: 8x8)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--counts",
        type=_positive_float,
        default=1.0,
        metavar="SCALE",
        help="scale of all expected counts (default: 1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _run_simulate(
    outdir: Path, *, preset: str, scan: tuple[int, int], seed: int, counts: float, progress: bool
) -> Path:
    """Check the preset and the output folder, then simulate; return the manifest path."""
    from .presets import load_preset

    load_preset(preset)  # an unknown preset fails before anything is written
    if outdir.exists() and not outdir.is_dir():
        raise InputError(outdir, "output folder exists and is not a folder")
    from .simulate import simulate_supercrystal

    return Path(
        simulate_supercrystal(
            outdir,
            preset=preset,
            scan_shape=scan,
            seed=seed,
            counts_scale=counts,
            progress=progress,
        )
    )


@command("simulate", "write a synthetic supercrystal in the real file formats", _simulate_args)
def _simulate(args: argparse.Namespace) -> int:
    manifest = _run_simulate(
        args.outdir,
        preset=args.preset,
        scan=args.scan,
        seed=args.seed,
        counts=args.counts,
        progress=not args.quiet,
    )
    print(manifest)
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o",
        "--outdir",
        metavar="DIR",
        type=Path,
        default=Path("demo_out"),
        help="output folder (default: demo_out)",
    )


def _reduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", metavar="MANIFEST", type=Path, help="supercrystal.toml")
    p.add_argument(
        "-o", "--output", metavar="REDUCED", type=Path, default=Path("reduced.h5"),
        help="reduced.h5 to write (default: reduced.h5); written under a temporary name first",
    )  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="threads decoding frames (default: 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _print_reduce_summary(summary: dict) -> None:
    x = summary.get("xray")
    if x:
        print(
            f"X-ray: {x['n_frames']} frames -> {x['n_bins']} bins over "
            f"{x['n_pixels_binned']} pixels; "
            f"binned counts {x['binned_counts']}; {x['excluded_pixels']} saturated/invalid pixel "
            f"values left out; {x['frames_excluded']} frames with no valid pixel "
            f"({x['frames_per_s']:.0f} frames/s)"
        )
        if "background_counts" in x:
            print(f"X-ray background: binned counts {x['background_counts']}")
    f = summary.get("flim")
    if f:
        ny, nx = f["shape"]
        print(f"FLIM: {ny} x {nx} px x {f['n_bins']} bins, {f['photons']} photons")
    p = summary.get("pl")
    if p:
        print(f"PL: {p['n_points']} spectra x {p['n_channels']} channels")
    print(f"wrote {summary['output']}")


@command(
    "reduce",
    "detector frames -> Poisson-exact polar bins around every peak; PTU -> histograms",
    _reduce_args,
)
def _reduce(args: argparse.Namespace) -> int:
    import logging

    from .reduce import reduce_dataset

    logging.basicConfig(level=logging.WARNING, format=f"{PROG} reduce: %(message)s")
    if args.workers < 1:
        raise InputError(None, f"--workers must be >= 1, got {args.workers}")
    summary = reduce_dataset(
        args.manifest, args.output, workers=args.workers, progress=not args.quiet
    )
    _print_reduce_summary(summary)
    return 0


def _fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", metavar="MANIFEST|REDUCED", type=Path, help="supercrystal.toml or reduced.h5"
    )
    p.add_argument("-o", "--output", metavar="POSTERIOR", type=Path, default=Path("posterior.nc"),
                   help="posterior.nc to write (default: posterior.nc)")  # fmt: skip
    p.add_argument("--model", choices=("joint", "xray", "flim", "pl"), default="xray",
                   help="which model to fit (default: xray)")  # fmt: skip
    p.add_argument("--sampler", choices=("numpyro", "blackjax", "nutpie", "pymc"),
                   default="numpyro", help="NUTS backend (default: numpyro, JAX)")  # fmt: skip
    p.add_argument("--chains", type=int, default=2, help="chains (default: 2)")
    p.add_argument("--draws", type=int, default=None,
                   help="kept draws per chain (default: 2000 for xray, 1000 for flim)")  # fmt: skip
    p.add_argument("--tune", type=int, default=1000, help="warm-up draws per chain (default: 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--crop", metavar="R0:R1,C0:C1", help="fit only these scan rows and columns")
    p.add_argument(
        "--likelihood", choices=("summary", "exact"), default="summary",
        help="X-ray likelihood: Laplace summaries of every peak window (fast, full scans) or "
        "exact Poisson on every bin (reference; crops) (default: summary)",
    )  # fmt: skip
    p.add_argument("--crystal-mask", metavar="FILE", type=Path,
                   help="crystal pixels of the modality's grid (.npy, or text rows of 0/1), "
                   "overriding the choice made from the counts")  # fmt: skip
    p.add_argument("--flim-bin", type=int, default=1, metavar="K",
                   help="FLIM: sum K x K image pixels (default: 1)")  # fmt: skip
    p.add_argument("--flim-merge", type=int, metavar="M",
                   help="FLIM: native time bins per merged bin (default: the preset's "
                   "[flim] merged_bin_ps)")  # fmt: skip
    p.add_argument(
        "--posterior-predictive", action="store_true",
        help="also draw the posterior predictive (from 200 thinned draws)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("fit", "posterior of one supercrystal (JAX-backed NUTS)", _fit_args)
def _fit(args: argparse.Namespace) -> int:
    import logging

    from .inference.fit import fit

    logging.basicConfig(level=logging.INFO, format=f"{PROG} fit: %(message)s")
    for name in ("chains", "draws", "tune"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(None, f"--{name} must be >= 1")
    out = fit(
        args.source, args.output, model=args.model, crop=args.crop, sampler=args.sampler,
        chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed,
        progress=not args.quiet, posterior_predictive=args.posterior_predictive,
        likelihood=args.likelihood, crystal_mask=args.crystal_mask, flim_bin=args.flim_bin,
        flim_merge=args.flim_merge,
    )  # fmt: skip
    print(f"wrote {out}")
    return 0


def _regress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("posteriors", metavar="POSTERIOR", type=Path, nargs="+",
                   help="posterior.nc files: per crystal an X-ray posterior and FLIM and/or PL "
                   "posteriors (grouped by the crystal name fit records)")  # fmt: skip
    p.add_argument("-o", "--output", metavar="REGRESSION", type=Path,
                   default=Path("regression.nc"),
                   help="regression.nc to write (default: regression.nc)")  # fmt: skip
    p.add_argument("--sampler", choices=("numpyro", "blackjax", "nutpie", "pymc"),
                   default="numpyro", help="NUTS backend (default: numpyro, JAX)")  # fmt: skip
    p.add_argument("--chains", type=int, default=2, help="chains (default: 2)")
    p.add_argument("--draws", type=int, default=1000, help="kept draws per chain (default: 1000)")
    p.add_argument("--tune", type=int, default=1000, help="warm-up draws per chain (default: 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--ci-prob", type=float, default=0.9,
                   help="probability of the printed credible intervals (default: 0.9)")  # fmt: skip
    p.add_argument("--posterior-predictive", action="store_true",
                   help="also draw the posterior predictive of the responses")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("regress", "blueshift and tau against <a>, delta_psi and g_q", _regress_args)
def _regress(args: argparse.Namespace) -> int:
    import logging

    from .regress import regress

    logging.basicConfig(level=logging.INFO, format=f"{PROG} regress: %(message)s")
    for name in ("chains", "draws", "tune"):
        if getattr(args, name) < 1:
            raise InputError(None, f"--{name} must be >= 1")
    if not 0 < args.ci_prob < 1:
        raise InputError(None, f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    out, summary = regress(
        args.posteriors, args.output, sampler=args.sampler, chains=args.chains, draws=args.draws,
        tune=args.tune, seed=args.seed, progress=not args.quiet, ci_prob=args.ci_prob,
        posterior_predictive=args.posterior_predictive,
    )  # fmt: skip
    from .regress import format_betas

    print(format_betas(summary))
    print(f"wrote {out}")
    return 0


@command("demo", "simulate a small supercrystal and run the pipeline on it", _demo_args)
def _demo(args: argparse.Namespace) -> int:
    from .io.dataset import dataset_info, format_info
    from .reduce import reduce_dataset

    manifest = _run_simulate(
        args.outdir, preset="cspbbr2cl", scan=(6, 6), seed=0, counts=1.0, progress=True
    )
    print(format_info(dataset_info(manifest)))
    print(f"manifest: {manifest}")
    summary = reduce_dataset(manifest, Path(args.outdir) / "reduced.h5", progress=True)
    _print_reduce_summary(summary)
    from .demo import fit_and_regress

    fit_and_regress(args.outdir, Path(args.outdir) / "reduced.h5", progress=True)
    return 0


# --- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``bayes-sc`` parser with one sub-parser per registered command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Bayesian analysis of nanocrystal supercrystals: scanning X-ray "
        "nanodiffraction, FLIM and PL, fitted jointly with spatial priors.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _os_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``bayes-sc`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Parameters
    ----------
    argv
        Command-line arguments without the program name.

    Returns
    -------
    int
        0 on success, 2 on bad input (one line on stderr), 130 on Ctrl-C. Usage errors,
        ``--help`` and ``--version`` exit through argparse's ``SystemExit`` (2, 0, 0).
    """
    args = build_parser().parse_args(argv)
    prefix = f"{PROG} {args.command}"
    try:
        return COMMANDS[args.command].run(args)
    except InputError as exc:
        print(f"{prefix}: error: {_one_line(exc)}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except BrokenPipeError:  # e.g. `bayes-sc info --json | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        print(f"{prefix}: error: {_one_line(_os_message(exc))}", file=sys.stderr)
    return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
