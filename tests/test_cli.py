"""The ``bayes-sc`` command line: help, ``info --json`` (SPEC §4.1) and bad input (SPEC §3)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from bayes_sc import __version__, cli
from bayes_sc.cli import COMMANDS, Command, main, scan_shape
from bayes_sc.io.eiger_write import write_eiger
from bayes_sc.io.irf import write_irf_h5
from bayes_sc.io.pl_spectra import write_pl_spectra
from bayes_sc.io.ptu import write_flim_ptu
from bayes_sc.physics.geometry import DetectorGeometry

PTU_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ptu"
SHAPE = (64, 80)
GEOM = DetectorGeometry(
    beam_center_x=30.25, beam_center_y=20.5, distance_mm=412.0, wavelength_nm=0.0898,
    pixel_size_mm=0.075,
)  # fmt: skip
SCAN = (3, 4)
BIN_PS, PERIOD_NS, N_BINS = 100.0, 12.5, 125
LAMBDA = np.linspace(480.0, 540.0, 50)
MANIFEST = """\
name = "SC-test"
material = "cspbbr2cl"
[xray]
master = "xray/scan_master.h5"
background = "xray/kapton_master.h5"
scan_shape = [3, 4]
step_um = [0.5, 0.25]
beam_center_x = 31.5
distance_mm = 400.0
[flim]
ptu = "flim/map.ptu"
irf = "flim/irf.h5"
[pl]
spectra = "pl/spectra.h5"
"""


def _mask():
    mask = np.zeros(SHAPE, np.uint32)
    mask[:, 40:43] = 1  # module gap
    mask[10, 5] = 2  # dead pixel
    return mask


def _eiger(master: Path, n: int, per_file: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = (rng.poisson(4.0, SHAPE).astype(np.uint32) for _ in range(n))
    write_eiger(
        master, frames, geometry=GEOM, pixel_mask=_mask(), bit_depth=32, count_time_s=0.5,
        frames_per_file=per_file, n_frames=n,
    )  # fmt: skip


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small dataset written with the project's writers: (folder, FLIM counts)."""
    root = tmp_path_factory.mktemp("dataset")
    (root / "xray").mkdir()
    _eiger(root / "xray" / "scan_master.h5", 12, 5, seed=1)  # 3 data files
    _eiger(root / "xray" / "kapton_master.h5", 2, 2, seed=2)
    rng = np.random.default_rng(3)
    counts = rng.poisson(1.5, (4, 5, N_BINS)).astype(np.uint32)
    write_flim_ptu(root / "flim" / "map.ptu", counts, bin_ps=BIN_PS, period_ns=PERIOD_NS,
                   pixel_um=0.2)  # fmt: skip
    irf = np.exp(-0.5 * ((np.arange(N_BINS) - 10) / 2.0) ** 2)
    write_irf_h5(root / "flim" / "irf.h5", irf, BIN_PS, PERIOD_NS)
    spectra = rng.poisson(20.0, (7, LAMBDA.size))
    write_pl_spectra(root / "pl" / "spectra.h5", LAMBDA, spectra, np.arange(7.0), np.zeros(7))
    (root / "supercrystal.toml").write_text(MANIFEST)
    return root, counts


@pytest.fixture
def dataset(source, tmp_path):
    """A private copy of the dataset (tests may break it): its manifest path."""
    root = tmp_path / "sc"
    shutil.copytree(source[0], root)
    return root / "supercrystal.toml"


def _snapshot(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def run_bad(args, capsys, monkeypatch, tmp_path, watch: Path | None = None) -> str:
    """Run ``main(args)`` in an empty folder expecting bad input: return the stderr line."""
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    before = _snapshot(watch) if watch is not None else None
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in captured.err
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"bayes-sc {args[0]}: error: ")
    assert captured.out == ""
    assert list(out.iterdir()) == []  # nothing written where the command ran
    if watch is not None:
        assert _snapshot(watch) == before  # nor beside the input
    return lines[0]


# --- help and version ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], *([name] for name in COMMANDS)])
def test_help(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: bayes-sc {' '.join(args)}".rstrip())
    if not args:
        for name in ("info", "simulate", "demo"):
            assert name in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayes-sc {__version__}"


def test_console_script(tmp_path):
    """The installed entry point: one error line, status 2, no traceback."""
    script = Path(sys.executable).parent / "bayes-sc"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bayes_sc.cli"]
    proc = subprocess.run([*cmd, "info", str(tmp_path / "nope.toml")], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nope.toml" in proc.stderr
    assert "manifest file not found" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


# --- info ---------------------------------------------------------------------------------------


def test_info_json(dataset, source, capsys):
    assert main(["info", str(dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    counts = source[1]
    assert info == {
        "name": "SC-test",
        "material": "cspbbr2cl",
        "xray": {
            "n_frames": 12, "frame_shape": [64, 80], "dtype": "uint32", "bit_depth": 32,
            "beam_center_x": 31.5, "beam_center_y": pytest.approx(20.5),
            "distance_mm": 400.0, "wavelength_nm": pytest.approx(0.0898),
            "pixel_size_mm": pytest.approx(0.075), "n_masked_pixels": 64 * 3 + 1,
            "scan_shape": [3, 4], "step_um": [0.5, 0.25], "n_background_frames": 2,
            "count_time_s": pytest.approx(0.5),
        },
        "flim": {
            "shape": [4, 5], "n_bins": N_BINS, "bin_ps": pytest.approx(BIN_PS),
            "period_ns": pytest.approx(PERIOD_NS), "photons": int(counts.sum()),
            "irf_bins": N_BINS, "channel": 0, "pixel_um": pytest.approx(0.2),
        },
        "pl": {"n_points": 7, "n_channels": 50, "wavelength_nm": [480.0, 540.0]},
    }  # fmt: skip
    assert type(info["flim"]["photons"]) is int and type(info["xray"]["n_frames"]) is int


def test_info_text_and_absent_modalities(dataset, capsys):
    dataset.write_text('material = "cspbbr2cl"\n[pl]\nspectra = "pl/spectra.h5"\n')
    assert main(["info", str(dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"name", "material", "pl"}
    assert info["name"] == "sc"  # default: the manifest's folder
    assert main(["info", str(dataset)]) == 0
    text = capsys.readouterr().out
    assert "7 points x 50 channels" in text and "X-ray" not in text


def test_info_text_full(dataset, capsys):
    assert main(["info", str(dataset)]) == 0
    text = capsys.readouterr().out
    parts = ["SC-test", "12 of 64 x 80 px", "3 x 4 points", "x = 31.5", "distance 400 mm",
             "193 masked", "2 frame(s)", "125 bins of 100 ps", "measured, 125 bins"]  # fmt: skip
    for part in parts:
        assert part in text, part


# --- bad input ----------------------------------------------------------------------------------


def _edit(manifest: Path, old: str, new: str) -> None:
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new))


def test_missing_manifest(tmp_path, capsys, monkeypatch):
    line = run_bad(["info", tmp_path / "absent.toml"], capsys, monkeypatch, tmp_path)
    assert "absent.toml: manifest file not found" in line


def test_bad_toml(dataset, tmp_path, capsys, monkeypatch):
    dataset.write_text('name = "x\nmaterial = \n')
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "supercrystal.toml: invalid TOML" in line


def test_unknown_material(dataset, tmp_path, capsys, monkeypatch):
    _edit(dataset, '"cspbbr2cl"', '"unobtainium"')
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "supercrystal.toml: key 'material'" in line and "unobtainium" in line


def test_missing_key(dataset, tmp_path, capsys, monkeypatch):
    _edit(dataset, "scan_shape = [3, 4]\n", "")
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "supercrystal.toml: key 'xray.scan_shape': is required but missing" in line


def test_referenced_file_missing(dataset, tmp_path, capsys, monkeypatch):
    (dataset.parent / "pl" / "spectra.h5").unlink()
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "supercrystal.toml: key 'pl.spectra': file not found" in line


def test_dangling_external_link(dataset, tmp_path, capsys, monkeypatch):
    (dataset.parent / "xray" / "scan_data_000002.h5").unlink()
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "scan_master.h5: /entry/data/data_000002 links to missing data file" in line
    assert "scan_data_000002.h5" in line


def test_truncated_master(dataset, tmp_path, capsys, monkeypatch):
    master = dataset.parent / "xray" / "scan_master.h5"
    master.write_bytes(master.read_bytes()[: master.stat().st_size // 2])
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "scan_master.h5: cannot open EIGER master file: truncated or corrupt" in line


def test_wrong_frame_count(dataset, tmp_path, capsys, monkeypatch):
    _edit(dataset, "scan_shape = [3, 4]", "scan_shape = [4, 4]")
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "supercrystal.toml: key 'xray.scan_shape'" in line
    assert "needs 16 frames but the data hold 12 frames" in line and "scan_master.h5" in line


def test_missing_geometry(dataset, tmp_path, capsys, monkeypatch):
    bare = dataset.parent / "xray" / "bare_data.h5"
    with h5py.File(bare, "w") as f:
        f.create_dataset("/entry/data/data", data=np.ones((12, *SHAPE), np.uint32),
                         chunks=(1, *SHAPE), **hdf5plugin.Bitshuffle(cname="lz4"))  # fmt: skip
    _edit(dataset, "xray/scan_master.h5", "xray/bare_data.h5")
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "bare_data.h5: missing geometry" in line and "beam_center_y" in line


def test_point_measurement_as_flim_map(dataset, tmp_path, capsys, monkeypatch):
    point = PTU_DIR / "tsb_hydraharp_v10_t3.ptu"
    if not point.exists():
        pytest.skip(f"real PicoQuant point measurement {point} not available (../shared absent)")
    _edit(dataset, 'ptu = "flim/map.ptu"', f'ptu = "{point}"')
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "tsb_hydraharp_v10_t3.ptu: is a point measurement, not an image scan" in line


def test_irf_with_other_bin_width(dataset, tmp_path, capsys, monkeypatch):
    irf = dataset.parent / "flim" / "irf.h5"
    write_irf_h5(irf, np.ones(2 * N_BINS), BIN_PS / 2, PERIOD_NS)
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "irf.h5: IRF bin width 50 ps differs from the FLIM image's 100 ps" in line


def test_background_of_another_shape(dataset, tmp_path, capsys, monkeypatch):
    bg = dataset.parent / "xray" / "kapton_master.h5"
    with h5py.File(bg, "w") as f:
        f.create_dataset("/entry/data/data", data=np.ones((1, 8, 8), np.uint32))
    line = run_bad(["info", dataset], capsys, monkeypatch, tmp_path, dataset.parent)
    assert "kapton_master.h5: background frames have shape [8, 8]" in line


# --- simulate and demo (the simulator itself is faked: its own tests run it) --------------------


@pytest.fixture
def fake_simulate(monkeypatch, source):
    """Replace ``simulate_supercrystal`` by one copying the test dataset; record its calls."""
    calls = []

    def fake(outdir, *, preset="cspbbr2cl", scan_shape=(8, 8), seed=0, counts_scale=1.0,
             progress=True):  # fmt: skip
        calls.append(dict(outdir=Path(outdir), preset=preset, scan_shape=scan_shape, seed=seed,
                          counts_scale=counts_scale, progress=progress))  # fmt: skip
        shutil.copytree(source[0], outdir, dirs_exist_ok=True)
        return Path(outdir) / "supercrystal.toml"

    monkeypatch.setattr("bayes_sc.simulate.simulate_supercrystal", fake, raising=False)
    return calls


def test_simulate_arguments(fake_simulate, tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", str(out), "--preset", "cspbbr3", "--scan", "25x7", "--seed", "4",
            "--counts", "0.5", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert fake_simulate == [dict(outdir=out, preset="cspbbr3", scan_shape=(25, 7), seed=4,
                                  counts_scale=0.5, progress=False)]  # fmt: skip
    assert capsys.readouterr().out.strip() == str(out / "supercrystal.toml")


def test_demo(fake_simulate, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fitted = []  # the fits and the regression have their own tests; here only the wiring
    reported = []

    def fake_fit(outdir, reduced, **kw):
        fitted.append((outdir, reduced))
        return {}

    def fake_reports(outdir, paths, reduced):
        reported.append((outdir, reduced))
        return Path(outdir) / "reports" / "index.md"

    monkeypatch.setattr("bayes_sc.demo.fit_and_regress", fake_fit)
    monkeypatch.setattr("bayes_sc.demo.write_reports", fake_reports)
    assert main(["demo"]) == 0
    assert fitted == [(Path("demo_out"), Path("demo_out") / "reduced.h5")]
    assert reported == fitted
    assert fake_simulate[0]["outdir"] == Path("demo_out")
    assert fake_simulate[0]["scan_shape"] == (6, 6) and fake_simulate[0]["seed"] == 0
    out = capsys.readouterr().out
    assert "SC-test" in out and "manifest: demo_out/supercrystal.toml" in out
    assert out.strip().splitlines()[-1] == "report: demo_out/reports/index.md"  # ends with it


@pytest.mark.parametrize("text", ["25", "25x", "x25", "0x5", "5x0", "-1x5", "2.5x3", "5x5x5",
                                  "5 x 5", "a x b", ""])  # fmt: skip
def test_scan_shape_is_strict(text, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "out", f"--scan={text}"])
    assert exc.value.code == 2
    assert "expected NYxNX with two positive integers" in capsys.readouterr().err
    assert scan_shape("25x25") == (25, 25) and scan_shape("3X4") == (3, 4)


@pytest.mark.parametrize("args", [["--counts", "0"], ["--counts", "nan"], ["--seed", "-1"]])
def test_simulate_bad_numbers(args, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", str(tmp_path / "out"), *args])
    assert exc.value.code == 2
    assert not (tmp_path / "out").exists()


def test_simulate_unknown_preset(fake_simulate, tmp_path, capsys, monkeypatch):
    line = run_bad(["simulate", tmp_path / "sim", "--preset", "nosuch"], capsys, monkeypatch,
                   tmp_path)  # fmt: skip
    assert "unknown material 'nosuch'" in line
    assert fake_simulate == [] and not (tmp_path / "sim").exists()


def test_simulate_onto_a_file(fake_simulate, tmp_path, capsys, monkeypatch):
    target = tmp_path / "afile"
    target.write_text("x")
    line = run_bad(["simulate", target], capsys, monkeypatch, tmp_path)
    assert "afile: output folder exists and is not a folder" in line
    assert fake_simulate == []


def test_os_error_is_one_line(tmp_path, capsys, monkeypatch):
    def denied(outdir, **kwargs):
        raise PermissionError(13, "Permission denied", str(Path(outdir) / "truth.h5"))

    monkeypatch.setattr("bayes_sc.simulate.simulate_supercrystal", denied, raising=False)
    line = run_bad(["simulate", tmp_path / "sim"], capsys, monkeypatch, tmp_path)
    assert line.endswith("sim/truth.h5: Permission denied")


def test_keyboard_interrupt(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "info", Command("info", "x", lambda p: None, interrupted))
    assert main(["info"]) == 130
    assert capsys.readouterr().err.strip() == "bayes-sc info: interrupted"
