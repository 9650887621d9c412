"""``bayes-sc batch``: four small crystals on Dask, failures recorded, reruns resume.

The tests' small simulated crystal is copied under four names (its [xray] table dropped:
the PL model is the quickest to fit, and these tests are about the orchestration). The first
batch, on a LocalCluster of 2 workers, has one corrupt manifest; later runs resume from its
outputs through a real ``dask scheduler`` and ``dask worker`` on loopback.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bayes_sc.cli import main

NAMES = ("SC0", "SC1", "SC2", "SC3")
# Two chains (the report's R-hat needs them), drawn one after another inside each worker.
SAMPLING = ["--models", "pl", "--chains", "2", "--draws", "20", "--tune", "30", "--seed", "4"]
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def crystals(small_sim, tmp_path_factory):
    """Four manifests (SC0-SC3) of copies of one simulated crystal; SC3's is corrupt."""
    root = tmp_path_factory.mktemp("batch")
    sim = small_sim.parent  # the session's simulated crystal (conftest): no new simulation
    manifests = []
    for name in NAMES:
        d = root / name
        shutil.copytree(sim / "flim", d / "flim")
        shutil.copytree(sim / "pl", d / "pl")
        text = (f'name = "{name}"\nmaterial = "cspbbr2cl"\n[flim]\nptu = "flim/map.ptu"\n'
                f'irf = "flim/irf.h5"\n[pl]\nspectra = "pl/spectra.h5"\n')  # fmt: skip
        (d / "supercrystal.toml").write_text(text)
        manifests.append(d / "supercrystal.toml")
    good = manifests[3].read_text()
    manifests[3].write_text(good.replace("[pl]", "[pl\n"))  # invalid TOML
    return root, manifests, good


@pytest.fixture(scope="module")
def first_run(crystals):
    """The first batch (LocalCluster, 2 workers): exit status, output and batch.json."""
    root, manifests, _ = crystals
    out = root / "out"
    args = ["batch", *map(str, manifests), "-o", str(out), "--workers", "2", *SAMPLING]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        rc = main(args)
    text = stdout.getvalue()
    return rc, out, json.loads((out / "batch.json").read_text()), text, time.perf_counter() - t0


def _by_name(record):
    return {c["name"]: c for c in record["crystals"]}


def _run(manifests, out, capsys, *extra):
    rc = main(["batch", *map(str, manifests), "-o", str(out), *SAMPLING, *extra])
    return rc, capsys.readouterr().out, json.loads((out / "batch.json").read_text())


def test_batch_on_a_local_cluster_goes_on_after_a_failure(crystals, first_run):
    root, manifests, good = crystals
    rc, out, record, text, _ = first_run
    assert rc == 1  # one crystal failed
    crys = _by_name(record)
    assert record["summary"] == {"ok": 3, "skipped": 0, "failed": 1}
    bad = crys["SC3"]
    assert bad["status"] == "failed" and "invalid TOML" in bad["error"]
    for name in NAMES[:3]:
        c = crys[name]
        assert c["status"] == "ok" and c["error"] is None, c
        assert set(c["steps"]) == {"reduce", "fit_pl", "report_pl"}
        assert all(s["seconds"] >= 0 for s in c["steps"].values())
        assert str(manifests[0].parent.parent) in next(iter(c["inputs"]))  # hashed inputs
        folder = out / name
        for f in ("reduced.h5", "posterior_pl.nc", "report_pl/report.md"):
            assert (folder / f).is_file(), f
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporaries
    assert record["regression"]["status"] == "skipped"  # no X-ray posteriors: no covariates
    assert "batch: 3 ok, 0 skipped, 1 failed (SC3)" in text


def _start_dask(tmp: Path):
    """A ``dask scheduler`` and a ``dask worker`` (2 processes) on loopback; the address."""
    file = tmp / "scheduler.json"
    common = dict(cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                  env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])})  # fmt: skip
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", file], **common)]  # fmt: skip
    deadline = time.monotonic() + 60
    while not file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(file.read_text())["address"]
    procs.append(subprocess.Popen([DASK, "worker", address, "--nthreads", "1", "--nworkers",
                                   "2", "--no-dashboard"], **common))  # fmt: skip
    from distributed import Client

    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    return address, procs


def test_batch_through_a_running_scheduler_redoes_only_what_is_missing(
    crystals, first_run, tmp_path, capsys
):
    _, manifests, good = crystals
    _, out, before, _, _ = first_run
    manifests[3].write_text(good)  # the corrupt manifest mended: its crystal runs now
    (out / "SC1" / "posterior_pl.nc").unlink()
    # an interrupted report: its folder is there, its provenance.json (written last) is not
    (out / "SC2" / "report_pl" / "provenance.json").unlink()
    stamp = {n: (out / n / "posterior_pl.nc").stat().st_mtime_ns for n in ("SC0", "SC2")}
    procs = []
    try:
        address, procs = _start_dask(tmp_path)
        assert address.startswith("tcp://127.0.0.1:")
        rc, text, record = _run(manifests, out, capsys, "--scheduler", address)
        assert rc == 0, text
        steps = {c["name"]: {s: v["status"] for s, v in c["steps"].items()}
                 for c in record["crystals"]}  # fmt: skip
        assert steps == {
            "SC0": dict(reduce="skipped", fit_pl="skipped", report_pl="skipped"),
            "SC1": dict(reduce="skipped", fit_pl="ok", report_pl="ok"),
            "SC2": dict(reduce="skipped", fit_pl="skipped", report_pl="ok"),
            "SC3": dict(reduce="ok", fit_pl="ok", report_pl="ok"),
        }
        assert {n: (out / n / "posterior_pl.nc").stat().st_mtime_ns for n in stamp} == stamp
        # progress over the whole batch: 4 x 3 crystal steps, the regression and its report
        assert "[14/14]" in text and "SC1 fit_pl: ok" in text
        assert "batch: 3 ok, 1 skipped, 0 failed" in text
        # once more: nothing left to do
        rc, text, record = _run(manifests, out, capsys, "--scheduler", address)
        assert rc == 0 and record["summary"] == {"ok": 0, "skipped": 4, "failed": 0}
        assert all(s["status"] == "skipped" for c in record["crystals"]
                   for s in c["steps"].values())  # fmt: skip
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    # SC1 holds SC0's data: refitted with the same seed in another process, the same draws
    import xarray as xr

    draws = [xr.open_datatree(out / n / "posterior_pl.nc")["posterior"]["E_peak"].values
             for n in ("SC0", "SC1", "SC3")]  # fmt: skip
    assert (draws[0] == draws[1]).all() and (draws[0] == draws[2]).all()
    assert before["settings"]["seed"] == 4


def test_bad_scheduler_address_is_one_line(crystals, tmp_path, capsys):
    _, manifests, _ = crystals
    assert main(["batch", str(manifests[0]), "-o", str(tmp_path), "--scheduler", "nowhere"]) == 2
    assert "--scheduler must be 'local' or an address" in capsys.readouterr().err
