"""``bayes-sc batch``: many supercrystals on Dask (SPEC §3).

Per crystal the Dask tasks of :mod:`bayes_sc.batch_tasks` reduce → fit (each requested model
the manifest has data for) → report into ``OUTDIR/<crystal name>/``; the fits of one crystal
run in parallel once its reduction is done. After every fit, one task fits the pooled
regression of all crystals into ``OUTDIR/regression.nc``. The client prints a line per finished
task (``[done/total]``) and writes ``OUTDIR/batch.json``: per crystal its status (ok, failed,
skipped: nothing to do), errors, outputs, input hashes and timings.

A failing crystal never stops the others. A rerun skips every step whose output is complete and
was made from the same inputs and settings (the outputs' provenance attributes,
:mod:`bayes_sc.provenance`), so an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .batch_tasks import (
    BatchSettings,
    error_text,
    fit_task,
    reduce_task,
    regress_task,
    report_task,
)
from .errors import InputError

__all__ = ["BatchSettings", "run_batch", "summary_line"]
log = logging.getLogger(__name__)
OK_STATUSES = ("ok", "skipped")


def _dir_name(name: str) -> str:
    """A crystal name as a folder name (path separators and odd characters replaced)."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".") or "crystal"


def plan_crystals(manifests: Sequence, outdir: Path, models: Sequence[str]) -> list[dict]:
    """Read every manifest; one entry per crystal: name, folder, models to fit, or its error."""
    from .io.manifest import read_manifest

    plan, seen = [], {}
    for m in manifests:
        entry = {"manifest": str(Path(m).resolve()), "name": Path(m).parent.name, "error": None,
                 "skip": False}  # fmt: skip
        try:
            man = read_manifest(m)
        except Exception as exc:  # a corrupt manifest fails its crystal, not the batch
            plan.append(entry | {"error": error_text(exc), "models": []})
            continue
        folder = _dir_name(man.name)
        entry.update(name=man.name, outdir=str(outdir / folder))
        have = {"xray": man.xray, "flim": man.flim, "pl": man.pl}
        entry["models"] = [k for k in models if have.get(k) is not None]
        if folder in seen:
            entry["error"] = f"crystal folder {folder!r} is also that of {seen[folder]}"
        elif not entry["models"]:  # nothing to do for this crystal: not a failure
            entry.update(error=f"no data for any of the models {', '.join(models)}", skip=True)
        seen.setdefault(folder, entry["manifest"])
        plan.append(entry)
    return plan


def _client(scheduler: str, workers: int):
    """A Dask client: a new LocalCluster, or a running scheduler by address."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        # One thread per worker process: JAX, PyTensor and h5py hold the GIL often enough
        # that processes, not threads, give parallel crystals.
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
        return Client(cluster), cluster
    if "://" not in scheduler:
        raise InputError(None, f"--scheduler must be 'local' or an address like "
                         f"tcp://HOST:PORT, got {scheduler!r}")  # fmt: skip
    try:
        return Client(scheduler, timeout="20s"), None
    except (OSError, TimeoutError) as exc:
        raise InputError(None, f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


def _submit(client, plan, outdir: Path, settings: BatchSettings) -> dict:
    """Submit every task; returns ``{future: (crystal index or None, step label)}``."""
    token = uuid.uuid4().hex[:8]
    labels, fits = {}, []
    for i, c in enumerate(plan):
        if c["error"] is not None:
            continue
        key = f"{_dir_name(c['name'])}-{token}"
        red = client.submit(reduce_task, c["manifest"], c["outdir"], key=f"reduce-{key}")
        labels[red] = (i, "reduce")
        for model in c["models"]:
            fit = client.submit(fit_task, red, c["outdir"], model, settings,
                                key=f"fit_{model}-{key}")  # fmt: skip
            labels[fit] = (i, f"fit_{model}")
            fits.append((c["name"], model, fit))
            if settings.report:
                rep = client.submit(report_task, fit, red, c["outdir"], model, settings.ci_prob,
                                    key=f"report_{model}-{key}")  # fmt: skip
                labels[rep] = (i, f"report_{model}")
    if settings.regress and fits:
        reg = client.submit(regress_task, fits, str(outdir / "regression.nc"), settings,
                            key=f"regress-{token}")  # fmt: skip
        labels[reg] = (None, "regress")
        if settings.report:
            rep = client.submit(report_task, reg, None, str(outdir), "regression",
                                settings.ci_prob, key=f"report_regression-{token}")  # fmt: skip
            labels[rep] = (None, "report_regression")
    return labels


def _collect(labels: dict, plan: list, echo: Callable[[str], None], results: dict) -> None:
    """Wait for the tasks in completion order, echoing a line each; fill ``results`` (step
    records by label) as they come, so that an interruption keeps what finished."""
    from distributed import as_completed

    total = len(labels)
    for done, fut in enumerate(as_completed(list(labels)), start=1):
        i, step = labels[fut]
        try:
            rec = fut.result()
        except Exception as exc:  # the task itself died (e.g. its worker was killed)
            rec = {"step": step, "status": "failed", "error": error_text(exc), "seconds": None}
        results[(i, step)] = rec
        who = plan[i]["name"] if i is not None else "batch"
        took = f" ({rec['seconds']:.1f} s)" if rec.get("seconds") is not None else ""
        why = rec.get("error") or rec.get("reason")
        why = f": {why}" if why else ""
        echo(f"[{done}/{total}] {who} {step}: {rec['status']}{took}{why}")


def _crystal_record(c: dict, steps: dict) -> dict:
    """One crystal's entry in batch.json."""
    rec = {k: c.get(k) for k in ("name", "manifest", "outdir", "models")}
    if c["error"] is not None:
        return rec | {"status": "skipped" if c["skip"] else "failed", "error": c["error"],
                      "steps": {}, "outputs": {}, "inputs": {}, "seconds": 0.0}  # fmt: skip
    red = steps.get("reduce", {})
    rec["inputs"] = red.get("inputs", {})
    rec["steps"] = {s: {k: r.get(k) for k in ("status", "error", "seconds")}
                    for s, r in steps.items()}  # fmt: skip
    rec["outputs"] = {s: r["output"] for s, r in steps.items() if r.get("output")}
    statuses = [r["status"] for r in steps.values()]
    errors = [f"{s}: {r.get('error') or r['status']}" for s, r in steps.items()
              if r["status"] not in OK_STATUSES]  # fmt: skip
    rec["error"] = "; ".join(errors) or None
    rec["status"] = ("failed" if any(s not in OK_STATUSES for s in statuses)
                     else "skipped" if all(s == "skipped" for s in statuses) else "ok")  # fmt: skip
    rec["seconds"] = round(sum(r.get("seconds") or 0.0 for r in steps.values()), 3)
    return rec


def run_batch(manifests: Sequence, outdir, settings: BatchSettings | None = None, *,
              scheduler: str = "local", workers: int = 2,
              echo: Callable[[str], None] = print) -> dict:  # fmt: skip
    """Run the batch and write ``outdir/batch.json``; return its content.

    Parameters
    ----------
    manifests
        ``supercrystal.toml`` paths, one per crystal.
    outdir
        Output folder: ``<crystal>/`` per crystal, ``regression.nc``, ``batch.json``.
    settings
        Models, sampler settings, report and regression switches.
    scheduler
        ``"local"`` (a new LocalCluster of ``workers`` single-threaded processes) or the
        address of a running Dask scheduler (``tcp://HOST:PORT``).
    workers
        Worker processes of the LocalCluster.
    echo
        Receives the progress lines.

    Returns
    -------
    dict
        The batch record (see the module docstring); ``summary`` counts crystals by status.
    """
    from .io.h5util import atomic_path

    settings = settings or BatchSettings()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plan = plan_crystals(manifests, outdir.resolve(), settings.models)
    for c in plan:
        if c["error"] is not None:
            echo(f"{c['name']}: {'skipped' if c['skip'] else 'failed'}: {c['error']}")
    results: dict = {}
    client, cluster = _client(scheduler, workers)
    labels: dict = {}
    try:
        labels = _submit(client, plan, outdir.resolve(), settings)
        echo(f"batch: {len(plan)} crystals, {len(labels)} tasks on {len(client.nthreads())} "
             f"workers ({scheduler})")  # fmt: skip
        _collect(labels, plan, echo, results)
    finally:
        for fut, (i, step) in labels.items():  # interrupted: what did not finish says so
            if (i, step) not in results:
                fut.cancel()
                results[(i, step)] = {"step": step, "status": "interrupted", "seconds": None}
        client.close()
        if cluster is not None:
            cluster.close()
        crystals = [
            _crystal_record(c, {s: r for (j, s), r in results.items() if j == i})
            for i, c in enumerate(plan)
        ]
        reg = results.get((None, "regress"), {"status": "skipped", "reason": "--no-regress"
                                              if not settings.regress else "no fits"})  # fmt: skip
        if (None, "report_regression") in results:
            reg = reg | {"report": results[(None, "report_regression")]}
        counts = {s: sum(c["status"] == s for c in crystals) for s in ("ok", "skipped", "failed")}
        record = {
            "bayes_sc_version": __version__,
            "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "outdir": str(outdir.resolve()),
            "scheduler": scheduler,
            "settings": settings.as_dict(),
            "wall_s": round(time.perf_counter() - t0, 3),
            "summary": counts,
            "crystals": crystals,
            "regression": reg,
        }
        with atomic_path(outdir / "batch.json") as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    return record


def failed(record: dict) -> bool:
    """Whether any crystal, or the regression, failed."""
    reg = record["regression"]
    bad = ("failed", "interrupted", "not run")
    return (record["summary"]["failed"] > 0 or reg["status"] in bad
            or reg.get("report", {}).get("status") in bad)  # fmt: skip


def summary_line(record: dict) -> str:
    """The batch in one line: counts by status, the failures' names, the regression."""
    s = record["summary"]
    bad = [c["name"] for c in record["crystals"] if c["status"] == "failed"]
    reg = record["regression"]
    line = (f"batch: {s['ok']} ok, {s['skipped']} skipped, {s['failed']} failed"
            f"{' (' + ', '.join(bad) + ')' if bad else ''}; regression {reg['status']}; "
            f"{record['wall_s']:.0f} s")  # fmt: skip
    return line
