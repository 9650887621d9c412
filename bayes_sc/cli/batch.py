"""``bayes-sc batch``: many supercrystals on Dask (SPEC §3; :mod:`bayes_sc.batch`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from . import _positive_float, _seed, command, log_to_stderr

MODELS = ("xray", "flim", "pl")


def _models(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in MODELS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(MODELS)}; got {text!r}"
        )
    return tuple(dict.fromkeys(names))


def _batch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifests", metavar="MANIFEST", type=Path, nargs="+",
                   help="supercrystal.toml files, one per crystal")  # fmt: skip
    p.add_argument("-o", "--outdir", metavar="OUTDIR", type=Path, default=Path("batch_out"),
                   help="output folder: <crystal>/ per crystal, regression.nc, batch.json "
                   "(default: batch_out)")  # fmt: skip
    p.add_argument("--scheduler", default="local", metavar="local|tcp://HOST:PORT",
                   help="a new LocalCluster (default) or a running Dask scheduler's "
                   "address")  # fmt: skip
    p.add_argument("--workers", type=int, default=2,
                   help="LocalCluster worker processes, one thread each (default: 2)")  # fmt: skip
    p.add_argument("--models", type=_models, default=MODELS, metavar="xray,flim,pl",
                   help="models to fit where the manifest has their data "
                   "(default: all)")  # fmt: skip
    p.add_argument("--sampler", choices=("numpyro", "blackjax", "nutpie", "pymc"),
                   default="numpyro", help="NUTS backend (default: numpyro, JAX)")  # fmt: skip
    p.add_argument("--chains", type=int, default=2, help="chains (default: 2)")
    p.add_argument("--draws", type=int, default=None,
                   help="kept draws per chain (default: each model's; 2000 for the "
                   "regression)")  # fmt: skip
    p.add_argument("--tune", type=int, default=1000, help="warm-up draws per chain (default: 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed of every fit (default: 0)")
    p.add_argument("--ci-prob", type=_positive_float, default=0.9,
                   help="credible-interval probability of the reports (default: 0.9)")  # fmt: skip
    p.add_argument("--no-report", action="store_true", help="fit only, write no reports")
    p.add_argument("--no-regress", action="store_true", help="no pooled regression")


@command("batch", "many supercrystals on Dask: reduce, fit, report, then regress", _batch_args)
def _batch(args: argparse.Namespace) -> int:
    import logging

    from ..batch import BatchSettings, failed, run_batch, summary_line

    log_to_stderr("batch", logging.WARNING)
    # The scheduler of a LocalCluster lives in this process: its chatter (connections, worker
    # shutdown) is no news for the user; failed tasks are reported in the progress lines.
    import distributed  # noqa: F401  (configures its loggers on import: quieten them after)

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("chains", "draws", "tune", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(None, f"--{name} must be >= 1")
    if not 0 < args.ci_prob < 1:
        raise InputError(None, f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    settings = BatchSettings(
        models=args.models, sampler=args.sampler, chains=args.chains, draws=args.draws,
        tune=args.tune, seed=args.seed, report=not args.no_report,
        regress=not args.no_regress, ci_prob=args.ci_prob,
    )  # fmt: skip
    record = run_batch(args.manifests, args.outdir, settings, scheduler=args.scheduler,
                       workers=args.workers, echo=lambda line: print(line, flush=True))  # fmt: skip
    print(summary_line(record))
    print(f"wrote {args.outdir / 'batch.json'}")
    return 1 if failed(record) else 0
