"""The steps of ``bayes-sc batch`` as Dask tasks: reduce, fit, report, regress.

Each task runs on a worker, never raises (an error becomes a step record with status
``failed``), and first checks whether its output already exists, is complete and was made from
the same inputs (SHA-256) and settings: then it does nothing (status ``skipped``). Outputs are
written under a temporary name and renamed, so an interrupted step leaves nothing that looks
complete. A step whose upstream step failed is ``not run``.

A step record is a dict: ``step``, ``status`` (ok, skipped, failed, not run), ``error``,
``output``, ``output_hash`` (SHA-256 of the output, what downstream steps compare), ``seconds``
and, for the reduction, ``inputs`` (the crystal's input files and their hashes).

This module imports nothing heavy at import time: a worker unpickling a task imports it before
:func:`limit_threads` can configure JAX.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import InputError
from .io.h5util import atomic_path
from .provenance import file_hash, hash_inputs, input_files, matches, provenance

#: Models the batch fits, in this order, when the manifest has data for them.
BATCH_MODELS = ("xray", "flim", "pl")
REPORT_PROVENANCE = "provenance.json"


@dataclass(frozen=True)
class BatchSettings:
    """What every crystal of a batch is fitted and reported with."""

    models: tuple[str, ...] = BATCH_MODELS
    sampler: str = "numpyro"
    chains: int = 2
    draws: int | None = None  # None: each model's default (``bayes-sc fit``)
    tune: int = 1000
    seed: int = 0
    report: bool = True
    regress: bool = True
    ci_prob: float = 0.9

    def fit_kwargs(self, model: str) -> dict:
        """Every keyword of :func:`bayes_sc.inference.fit.fit`, explicit: the posterior's
        recorded settings are then exactly these, and the rerun check compares like with like."""
        kw = dict(model=model, crop=None, crystal_mask=None, flim_bin=1, flim_merge=None,
                  likelihood="summary", sampler=self.sampler, chains=self.chains,
                  tune=self.tune, seed=self.seed)  # fmt: skip
        if self.draws is not None:  # fit drops draws=None (the model's default) from its record
            kw["draws"] = self.draws
        return kw

    def regress_kwargs(self) -> dict:
        """Keywords of :func:`bayes_sc.regress.regress` (the ones it records, plus the seed)."""
        return dict(sampler=self.sampler, chains=self.chains, tune=self.tune, seed=self.seed,
                    draws=2000 if self.draws is None else self.draws, ci_prob=self.ci_prob,
                    posterior_predictive=False)  # fmt: skip

    def as_dict(self) -> dict:
        return asdict(self)


def limit_threads() -> None:
    """One JAX device and one compute thread per worker thread (call before JAX starts).

    ``fit`` asks XLA for as many host devices as cores so that numpyro runs chains in
    parallel; in a Dask worker process that already owns one core, that would put
    ``workers × cores`` busy threads on the machine. With one device numpyro draws the chains
    one after another, inside the worker's share.
    """
    if "jax" not in sys.modules:
        # A device count inherited from the process that started the worker (e.g. one that
        # fitted before) is replaced: the worker's share is one device.
        flags = re.sub(r"--xla_force_host_platform_device_count=\S*", "",
                       os.environ.get("XLA_FLAGS", ""))  # fmt: skip
        flags += " --xla_force_host_platform_device_count=1"
        if "xla_cpu_multi_thread_eigen" not in flags:
            flags += " --xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = " ".join(flags.split())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    # ... and numpyro's warning that it draws the chains one after another is expected here.
    warnings.filterwarnings("ignore", message="There are not enough devices to run parallel")


def _quiet_pymc() -> None:
    """PyMC's notes on every fit ("Only 20 samples per chain", the sampled variables) would
    interleave across workers; its warnings (divergences) still show."""
    import pymc  # noqa: F401  (it sets its logger's level on import: quieten it after)

    logging.getLogger("pymc").setLevel(logging.WARNING)


def error_text(exc: BaseException) -> str:
    """An exception as one line: the message of bad input, else its type and message."""
    text = str(exc) if isinstance(exc, InputError | OSError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def _record(step: str, status: str, t0: float, **fields) -> dict:
    rec = dict(step=step, status=status, error=None, output=None, output_hash=None)
    rec.update(fields)
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


def _not_run(step: str, upstream: dict | None) -> dict | None:
    if upstream is None or upstream["status"] in ("ok", "skipped"):
        return None
    return _record(step, "not run", time.perf_counter(), error=f"{upstream['step']} failed")


def reduce_task(manifest: str, crystal_dir: str) -> dict:
    """Reduce a crystal's data into ``crystal_dir/reduced.h5`` unless it is current."""
    t0 = time.perf_counter()
    limit_threads()
    try:
        inputs = hash_inputs(input_files(manifest))
        out = Path(crystal_dir) / "reduced.h5"
        from .provenance import read_attrs

        status = "skipped"
        if not (out.is_file() and matches(read_attrs(out), inputs, {}, None)):
            from .reduce import reduce_dataset

            reduce_dataset(manifest, out, workers=1, progress=False)
            status = "ok"
        return _record("reduce", status, t0, output=str(out), output_hash=file_hash(out),
                       inputs=inputs)  # fmt: skip
    except Exception as exc:  # recorded: the batch goes on with the other crystals
        return _record("reduce", "failed", t0, error=error_text(exc))


def fit_task(reduced: dict, crystal_dir: str, model: str, settings: BatchSettings) -> dict:
    """Fit ``model`` to the reduced data into ``crystal_dir/posterior_<model>.nc``."""
    step = f"fit_{model}"
    if (skip := _not_run(step, reduced)) is not None:
        return skip
    t0 = time.perf_counter()
    limit_threads()
    try:
        from .provenance import read_attrs

        src = Path(reduced["output"]).resolve()
        out = Path(crystal_dir) / f"posterior_{model}.nc"
        kw = settings.fit_kwargs(model)
        status = "skipped"
        current = {str(src): reduced["output_hash"]}
        if not (out.is_file() and matches(read_attrs(out), current, kw, settings.seed)):
            from .inference.fit import fit

            _quiet_pymc()
            fit(src, out, progress=False, **kw)
            status = "ok"
        return _record(step, status, t0, output=str(out), output_hash=file_hash(out))
    except Exception as exc:
        return _record(step, "failed", t0, error=error_text(exc))


def report_task(posterior: dict, reduced: dict | None, folder: str, name: str,
                ci_prob: float) -> dict:  # fmt: skip
    """Write the report of one posterior (or the regression) into ``folder/report_<name>/``.

    :func:`bayes_sc.report.write_report` replaces the folder as a whole; a
    ``provenance.json`` (the hashes of the posterior and the reduced data, ``ci_prob``) is
    written into it last, so a report without a matching one is never taken as finished.
    """
    step = f"report_{name}"
    if (skip := _not_run(step, posterior)) is not None:
        return skip
    t0 = time.perf_counter()
    if posterior.get("output") is None:  # e.g. a regression with nothing to regress
        return _record(step, "skipped", t0, reason=f"no {name} output to report")
    limit_threads()
    final = Path(folder) / f"report_{name}"
    inputs = {str(Path(posterior["output"]).resolve()): posterior["output_hash"]}
    if reduced is not None:
        inputs[str(Path(reduced["output"]).resolve())] = reduced["output_hash"]
    settings = {"ci_prob": ci_prob}
    prov = final / REPORT_PROVENANCE
    try:
        try:
            done = matches(json.loads(prov.read_text()), inputs, settings, None)
        except (OSError, ValueError):
            done = False
        if done and (final / "report.md").is_file():
            return _record(step, "skipped", t0, output=str(final / "report.md"))
        from .report import write_report  # here: workers import the report layer only if asked

        md = write_report(posterior["output"], final, ci_prob=ci_prob,
                          reduced=None if reduced is None else reduced["output"])  # fmt: skip
        with atomic_path(prov) as tmp:
            tmp.write_text(json.dumps(provenance(inputs, settings), indent=1))
        return _record(step, "ok", t0, output=str(md))
    except Exception as exc:
        return _record(step, "failed", t0, error=error_text(exc))


def regress_task(fits: list, out: str, settings: BatchSettings) -> dict:
    """The pooled regression of every crystal with an X-ray and an optical posterior.

    ``fits`` holds ``(crystal, model, fit record)``; crystals without a usable X-ray
    posterior, or without any FLIM or PL posterior, are left out.
    """
    t0 = time.perf_counter()
    limit_threads()
    by_crystal: dict[str, dict[str, dict]] = {}
    for crystal, model, rec in fits:
        if rec["status"] in ("ok", "skipped"):
            by_crystal.setdefault(crystal, {})[model] = rec
    use = {c: r for c, r in by_crystal.items() if "xray" in r and ({"flim", "pl"} & set(r))}
    if not use:
        return _record("regress", "skipped", t0, error=None, crystals=[],
                       reason="no crystal has an X-ray and a FLIM or PL posterior")  # fmt: skip
    try:
        from .presets import preset_dir
        from .provenance import read_attrs

        recs = [r for c in sorted(use) for r in use[c].values()]
        toml = (preset_dir() / "regression.toml").resolve()
        inputs = {str(Path(r["output"]).resolve()): r["output_hash"] for r in recs}
        inputs[str(toml)] = file_hash(toml)
        kw = settings.regress_kwargs()
        path = Path(out)
        status = "skipped"
        if not (path.is_file() and matches(read_attrs(path), inputs, kw, settings.seed)):
            from .regress import regress

            _quiet_pymc()
            regress([r["output"] for r in recs], path, progress=False, **kw)
            status = "ok"
        return _record("regress", status, t0, output=str(path), output_hash=file_hash(path),
                       crystals=sorted(use))  # fmt: skip
    except Exception as exc:
        return _record("regress", "failed", t0, error=error_text(exc), crystals=sorted(use))
