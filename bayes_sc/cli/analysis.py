"""Analysis sub-commands: ``fit``, ``regress``, ``demo`` (SPEC §3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from . import _seed, command, log_to_stderr
from .data import _print_reduce_summary, _run_simulate


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
                   help="draws kept per chain (default: 2000)")  # fmt: skip
    p.add_argument("--tune", type=int, default=1000, help="warm-up draws per chain (default: 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--target-accept", type=float, metavar="P",
                   help="NUTS target acceptance in (0, 1); raise it (e.g. 0.95) when a fit reports "
                   "divergences (default: the model's: X-ray the preset's [xray] target_accept, "
                   "FLIM [flim] target_accept, PL 0.9, joint 0.95)")  # fmt: skip
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

    from ..inference.fit import fit

    log_to_stderr("fit", logging.INFO)
    for name in ("chains", "draws", "tune"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(None, f"--{name} must be >= 1")
    if args.target_accept is not None and not 0.0 < args.target_accept < 1.0:
        raise InputError(None, f"--target-accept must be in (0, 1), not {args.target_accept}")
    out = fit(
        args.source, args.output, model=args.model, crop=args.crop, sampler=args.sampler,
        chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed,
        progress=not args.quiet, posterior_predictive=args.posterior_predictive,
        likelihood=args.likelihood, crystal_mask=args.crystal_mask, flim_bin=args.flim_bin,
        flim_merge=args.flim_merge, target_accept=args.target_accept,
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
    p.add_argument("--draws", type=int, default=2000, help="kept draws per chain (default: 2000)")
    p.add_argument("--tune", type=int, default=1000, help="warm-up draws per chain (default: 1000)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--target-accept", type=float, default=0.95, metavar="P",
                   help="NUTS target acceptance in (0, 1) (default: 0.95); raise it (e.g. 0.99: "
                   "about twice the time) when a pooled fit reports divergences, which come "
                   "from a crystal-level sd near 0")  # fmt: skip
    p.add_argument("--ci-prob", type=float, default=0.9,
                   help="probability of the printed credible intervals (default: 0.9)")  # fmt: skip
    p.add_argument("--posterior-predictive", action="store_true",
                   help="also draw the posterior predictive of the responses")  # fmt: skip
    p.add_argument("--settings", metavar="TOML", type=Path,
                   help="priors and settings overriding the shipped models/regression.toml, key "
                   "by key (e.g. [priors.beta_crystal_sd] sigma = 0.1, to see how the pooled "
                   "slopes depend on it)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")


@command("regress", "blueshift and tau against <a>, delta_psi and g_q", _regress_args)
def _regress(args: argparse.Namespace) -> int:
    import logging

    from ..regress import regress

    log_to_stderr("regress", logging.INFO)
    for name in ("chains", "draws", "tune"):
        if getattr(args, name) < 1:
            raise InputError(None, f"--{name} must be >= 1")
    if not 0 < args.ci_prob < 1:
        raise InputError(None, f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    if not 0 < args.target_accept < 1:
        raise InputError(None, f"--target-accept must be in (0, 1), not {args.target_accept}")
    out, summary = regress(
        args.posteriors, args.output, sampler=args.sampler, chains=args.chains, draws=args.draws,
        tune=args.tune, seed=args.seed, progress=not args.quiet, ci_prob=args.ci_prob,
        posterior_predictive=args.posterior_predictive, settings_path=args.settings,
        target_accept=args.target_accept,
    )  # fmt: skip
    from ..regress import format_betas

    print(format_betas(summary))
    print(f"wrote {out}")
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


@command("demo", "simulate a small supercrystal and run the pipeline on it", _demo_args)
def _demo(args: argparse.Namespace) -> int:
    from ..io.dataset import dataset_info, format_info
    from ..reduce import reduce_dataset

    manifest = _run_simulate(
        args.outdir, preset="cspbbr2cl", scan=(6, 6), seed=0, counts=1.0, progress=True
    )
    print(format_info(dataset_info(manifest)))
    print(f"manifest: {manifest}")
    summary = reduce_dataset(manifest, Path(args.outdir) / "reduced.h5", progress=True)
    _print_reduce_summary(summary)
    from ..demo import fit_and_regress

    reduced = Path(args.outdir) / "reduced.h5"
    outputs = fit_and_regress(args.outdir, reduced, progress=True)
    from ..demo import write_reports

    print(f"report: {write_reports(args.outdir, outputs, reduced)}")
    return 0
