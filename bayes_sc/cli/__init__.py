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
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import __version__
from ..errors import InputError

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


def log_to_stderr(command_name: str, level: int) -> None:
    """Show the package's log records (``bayes_sc.*``) at ``level`` as ``bayes-sc <cmd>: ...``.

    Only the package's logger is set up: configuring the root logger would also print other
    libraries' INFO records (e.g. PyTensor's config parser) before our one error line.
    """
    import logging

    class StderrHandler(logging.StreamHandler):
        """Writes to the current ``sys.stderr`` (which tests and notebooks replace)."""

        @property
        def stream(self):
            return sys.stderr

        @stream.setter
        def stream(self, value):
            pass

    logger = logging.getLogger("bayes_sc")
    logger.setLevel(level)
    handler = next((h for h in logger.handlers if getattr(h, "bayes_sc_cli", False)), None)
    if handler is None:
        handler = StderrHandler()
        handler.bayes_sc_cli = True
        logger.addHandler(handler)
    handler.setFormatter(logging.Formatter(f"{PROG} {command_name}: %(message)s"))


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


# Sub-command modules register themselves with @command on import (order = --help order).
from . import data, analysis, report, batch  # noqa: E402,F401,I001
