"""Data sub-commands: ``info``, ``simulate``, ``reduce`` (SPEC §3)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from . import _positive_float, _seed, command, log_to_stderr, scan_shape


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", metavar="MANIFEST", type=Path, help="supercrystal.toml")
    p.add_argument("--json", action="store_true", help="print one JSON object (SPEC §4.1)")


@command("info", "what a dataset holds: frames, geometry, mask, FLIM and IRF, PL", _info_args)
def _info(args: argparse.Namespace) -> int:
    from ..io.dataset import dataset_info, format_info

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
    from ..presets import load_preset

    load_preset(preset)  # an unknown preset fails before anything is written
    if outdir.exists() and not outdir.is_dir():
        raise InputError(outdir, "output folder exists and is not a folder")
    from ..simulate import simulate_supercrystal

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

    from ..reduce import reduce_dataset

    log_to_stderr("reduce", logging.WARNING)
    if args.workers < 1:
        raise InputError(None, f"--workers must be >= 1, got {args.workers}")
    summary = reduce_dataset(
        args.manifest, args.output, workers=args.workers, progress=not args.quiet
    )
    _print_reduce_summary(summary)
    return 0
