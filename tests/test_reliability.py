"""Bad input through the real command line (SPEC §3; the table in docs/reliability.md).

Every case corrupts a good input (the simulated supercrystal of ``small_sim``, or the real
PicoQuant files of ../shared) in ``tmp_path``, runs ``bayes-sc reduce`` or ``bayes-sc fit`` with
``-o`` in-process, and checks: exit status 2, one error line ``bayes-sc <cmd>: error: <file>:
<problem>`` naming the file and the problem, no traceback, nothing written under the output
name nor any temporary file beside it, and the inputs untouched. All of them fail before any
sampling. Set ``BAYES_SC_RELIABILITY_LOG=FILE`` to append each case's message to FILE (JSON
lines; used to write the table).
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import h5py
import hdf5plugin
import numpy as np
import pytest

from bayes_sc.cli import main
from bayes_sc.io.irf import write_irf_h5
from bayes_sc.io.ptu import read_flim_image, write_flim_ptu

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MASK = "/entry/instrument/detector/detectorSpecific/pixel_mask"
POINT_PTU = SHARED_DATA / "ptu" / "tsb_hydraharp_v10_t3.ptu"
needs_shared = pytest.mark.skipif(
    not POINT_PTU.exists(), reason=f"real PicoQuant files absent ({POINT_PTU.parent})"
)
CASES: dict = {}


def case(name: str, *marks):
    """Register a builder ``env -> (args, file named, problem words)`` as a parametrised case."""

    def register(build):
        CASES[name] = pytest.param(name, build, marks=marks, id=name)
        return build

    return register


# --- helpers ------------------------------------------------------------------------------------


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def _manifest(env, body: str, name: str = "part.toml") -> Path:
    """A manifest beside the copied dataset holding only ``body`` (fast: one modality)."""
    path = env.sc / name
    path.write_text(f'name = "bad"\nmaterial = "cspbbr2cl"\n{body}')
    return path


def _truncate(path: Path, keep: float = 0.5) -> None:
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * keep)])


def _replace_mask(master: Path, mask: np.ndarray) -> None:
    with h5py.File(master, "a") as f:
        del f[MASK]
        f[MASK] = mask


def _flim_ptu(env, counts) -> Path:
    """Rewrite the dataset's FLIM image with ``counts`` (same timing); manifest with [flim]."""
    ptu = env.sc / "flim" / "map.ptu"
    img = read_flim_image(ptu)
    ptu.unlink()
    write_flim_ptu(ptu, counts(img.counts.shape), bin_ps=img.bin_ps, period_ns=img.period_ns,
                   pixel_um=0.2)  # fmt: skip
    return _manifest(env, '[flim]\nptu = "flim/map.ptu"\n')


def _irf(env, *, bin_factor: float = 1.0, period_factor: float = 1.0) -> Path:
    irf = env.sc / "flim" / "irf.h5"
    with h5py.File(irf) as f:
        counts, bin_ps, period = f["counts"][()], float(f["bin_ps"][()]), float(f["period_ns"][()])
    irf.unlink()
    write_irf_h5(irf, counts, bin_ps * bin_factor, period * period_factor)
    return _manifest(env, '[flim]\nptu = "flim/map.ptu"\nirf = "flim/irf.h5"\n')


def _reduce(env, manifest, name="reduced.h5"):
    return ["reduce", manifest, "-o", env.out / name, "--quiet"]


def _fit(env, source, *more, name="posterior.nc"):
    return ["fit", source, "-o", env.out / name, "--quiet", "--draws", "5", "--tune", "5", *more]


# --- the cases ----------------------------------------------------------------------------------


@case("missing_manifest")
def _(env):
    return _reduce(env, env.sc / "absent.toml"), "absent.toml", "manifest file not found"


@case("missing_referenced_file")
def _(env):
    (env.sc / "flim" / "irf.h5").unlink()
    return _reduce(env, env.manifest), "supercrystal.toml", "key 'flim.irf': file not found"


@case("toml_syntax_error")
def _(env):
    _edit(env.manifest, 'material = "cspbbr2cl"', 'material = "cspbbr2cl')
    return _reduce(env, env.manifest), "supercrystal.toml", "invalid TOML"


@case("toml_missing_key")
def _(env):
    _edit(env.manifest, "step_um = [0.5, 0.5]\n", "")
    return (_reduce(env, env.manifest), "supercrystal.toml",
            "key 'xray.step_um': is required but missing")  # fmt: skip


@case("toml_wrong_type")
def _(env):
    _edit(env.manifest, "scan_shape = [5, 6]", 'scan_shape = "5x6"')
    return (_reduce(env, env.manifest), "supercrystal.toml",
            "key 'xray.scan_shape': must be of type list, got '5x6'")  # fmt: skip


@case("truncated_master")
def _(env):
    _truncate(env.sc / "xray" / "scan_master.h5")
    return (_reduce(env, env.manifest), "scan_master.h5",
            "cannot open EIGER master file: truncated or corrupt HDF5 file")  # fmt: skip


@case("truncated_data_file")
def _(env):
    _truncate(env.sc / "xray" / "scan_data_000003.h5", 0.9)
    return (_reduce(env, env.manifest), "scan_data_000003.h5",
            "cannot open EIGER data file: truncated or corrupt HDF5 file")  # fmt: skip


@case("dangling_external_link")
def _(env):
    (env.sc / "xray" / "scan_data_000002.h5").unlink()
    return (_reduce(env, env.manifest), "scan_master.h5",
            "/entry/data/data_000002 links to missing data file scan_data_000002.h5")  # fmt: skip


@case("mask_shape_differs_from_frames")
def _(env):
    master = env.sc / "xray" / "scan_master.h5"
    with h5py.File(master) as f:
        mask = f[MASK][()]
    _replace_mask(master, mask[:-1])
    return (_reduce(env, env.manifest), "scan_master.h5",
            "pixel_mask shape (2166, 2070) differs from the frame shape (2167, 2070)")  # fmt: skip


@case("mask_with_nan")
def _(env):
    master = env.sc / "xray" / "scan_master.h5"
    with h5py.File(master) as f:
        mask = f[MASK][()].astype(np.float32)
    mask[100:110, 200:210] = np.nan
    _replace_mask(master, mask)
    return (_reduce(env, env.manifest), "scan_master.h5",
            "pixel_mask holds 100 NaN or infinite values")  # fmt: skip


@case("all_pixels_masked")
def _(env):
    master = env.sc / "xray" / "scan_master.h5"
    with h5py.File(master, "a") as f:
        f[MASK][...] = 1
    return _reduce(env, env.manifest), "scan_master.h5", "every detector pixel is masked"


@case("all_frames_saturated")
def _(env):
    # a 1 x 2 scan whose every pixel reads the saturation value (the detector's invalid mark)
    with h5py.File(env.sc / "xray" / "scan_master.h5") as f:
        shape = f[MASK].shape
        attrs = dict(f["/entry/data/data_000001"].attrs)
    data = env.sc / "xray" / "scan_data_000001.h5"
    data.unlink()
    with h5py.File(data, "w") as f:
        d = f.create_dataset("entry/data/data", data=np.full((6, *shape), 2**32 - 1, np.uint32),
                             chunks=(1, *shape), **hdf5plugin.Bitshuffle(cname="lz4"))  # fmt: skip
        d.attrs.update(attrs)
    _edit(env.manifest, "scan_shape = [5, 6]", "scan_shape = [1, 6]")
    with h5py.File(env.sc / "xray" / "scan_master.h5", "a") as f:  # keep the first data file
        for k in range(2, 6):
            del f[f"/entry/data/data_{k:06d}"]
    return _reduce(env, env.manifest), "scan_master.h5", "all 6 frames are invalid"


@case("xray_scan_without_crystal")
def _(env):
    # the bare-substrate frames given as the scan: no point shows SAXS peaks
    man = _manifest(env, '[xray]\nmaster = "xray/kapton_master.h5"\n'
                    'background = "xray/kapton_master.h5"\nscan_shape = [2, 2]\n'
                    "step_um = [0.5, 0.5]\n")  # fmt: skip
    return _fit(env, man, "--model", "xray"), "kapton_master.h5", "no crystal in the scan"


@case("flim_irf_other_bin_width")
def _(env):
    return (_reduce(env, _irf(env, bin_factor=0.5)), "irf.h5",
            "IRF bin width 8 ps differs from the FLIM image's 16 ps")  # fmt: skip


@case("flim_irf_other_period")
def _(env):
    return (_reduce(env, _irf(env, period_factor=2.0)), "irf.h5",
            "IRF laser period 100 ns differs from the FLIM image's 50 ns")  # fmt: skip


@case("flim_no_photons")
def _(env):
    man = _flim_ptu(env, lambda shape: np.zeros(shape, np.uint32))
    return _reduce(env, man), "map.ptu", "contains no photons inside one laser period"


@case("flim_no_crystal")
def _(env):
    def sparse(shape):  # 2 photons per pixel: no pixel reaches the preset's 20
        counts = np.zeros(shape, np.uint32)
        counts[:, :, 100] = 2
        return counts

    return (_fit(env, _flim_ptu(env, sparse), "--model", "flim"), "map.ptu",
            "no crystal in the FLIM image: no pixel has 20 photons or more")  # fmt: skip


@case("flim_point_measurement_as_image", needs_shared)
def _(env):
    man = _manifest(env, f'[flim]\nptu = "{POINT_PTU}"\n')
    return (_reduce(env, man), POINT_PTU.name,
            "is a point measurement, not an image scan; give it as the IRF")  # fmt: skip


@case("pl_spectra_with_nan")
def _(env):
    spectra = env.sc / "pl" / "spectra.h5"
    with h5py.File(spectra, "a") as f:
        counts = f["counts"][()].astype(float)
        counts[2, 3] = np.nan
        del f["counts"]
        f["counts"] = counts
    man = _manifest(env, '[pl]\nspectra = "pl/spectra.h5"\n')
    return (_reduce(env, man), "spectra.h5",
            "counts or wavelength_nm contain NaN or infinite values")  # fmt: skip


@case("crystal_mask_with_nan")
def _(env):
    mask = env.sc / "mask.txt"
    mask.write_text("1 1 nan 1 1 1\n" * 5)
    return (_fit(env, env.reduced, "--model", "xray", "--crystal-mask", mask), "mask.txt",
            "a crystal mask must be a 2-D grid of 0/1")  # fmt: skip


@case("wavelength_in_angstrom")
def _(env):
    _edit(env.manifest, "step_um = [0.5, 0.5]", "step_um = [0.5, 0.5]\nwavelength_nm = 0.898")
    return (_reduce(env, env.manifest), "supercrystal.toml",
            "wavelength_nm = 0.898 cannot reach the WAXS reflections at any angle")  # fmt: skip


@case("distance_in_metres")
def _(env):
    _edit(env.manifest, "step_um = [0.5, 0.5]", "step_um = [0.5, 0.5]\ndistance_mm = 0.412")
    return (_reduce(env, env.manifest), "supercrystal.toml",
            "no unmasked detector pixel lies in any peak region with wavelength_nm = 0.0898, "
            "distance_mm = 0.412")  # fmt: skip


@case("negative_pixel_size")
def _(env):
    _edit(env.manifest, 'irf = "flim/irf.h5"', 'irf = "flim/irf.h5"\npixel_um = -0.2')
    return (_reduce(env, env.manifest), "supercrystal.toml",
            "key 'flim.pixel_um': must be positive (µm), got -0.2")  # fmt: skip


@case("output_folder_read_only")
def _(env):
    ro = env.out / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    env.keep = ["ro"]
    if os.geteuid() == 0:  # root ignores the mode: refuse as the kernel would for a user
        real = tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and Path(dir) == ro:
                raise PermissionError(errno.EACCES, "Permission denied", str(ro / ".x.part"))
            return real(*args, dir=dir, **kwargs)

        env.monkeypatch.setattr(tempfile, "mkstemp", refuse)
    man = _manifest(env, '[pl]\nspectra = "pl/spectra.h5"\n')
    return (["reduce", man, "-o", ro / "reduced.h5", "--quiet"], "ro/reduced.h5",
            "cannot write the output in")  # fmt: skip


@case("disk_full")
def _(env):
    import bayes_sc.reduce as reduce_mod

    def full(man, group):  # half-written, then ENOSPC as HDF5 reports it (no file name)
        group["wavelength_nm"] = np.arange(1000.0)
        group.file.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    env.monkeypatch.setattr(reduce_mod, "_reduce_pl", full)
    man = _manifest(env, '[pl]\nspectra = "pl/spectra.h5"\n')
    return (_reduce(env, man), "out/reduced.h5",
            "cannot write the output (No space left on device)")  # fmt: skip


@case("output_is_a_folder")
def _(env):
    (env.out / "reduced.h5").mkdir()
    env.keep = ["reduced.h5"]
    return _reduce(env, env.manifest), "reduced.h5", "the output is an existing folder"


@case("output_under_a_file")
def _(env):
    (env.out / "afile").write_text("x")
    env.keep = ["afile"]
    return (["reduce", env.manifest, "-o", env.out / "afile" / "reduced.h5", "--quiet"],
            "afile/reduced.h5", "afile is a file, not a folder")  # fmt: skip


@case("output_is_an_input_data_file")
def _(env):
    data = env.sc / "xray" / "scan_data_000001.h5"
    return (["reduce", env.manifest, "-o", data, "--quiet"], "scan_data_000001.h5",
            "the output would overwrite an input file")  # fmt: skip


@case("fit_output_is_its_input")
def _(env):
    return (["fit", env.reduced, "-o", env.reduced, "--model", "pl", "--quiet"], "reduced.h5",
            "the output would overwrite an input file")  # fmt: skip


@case("fit_output_is_a_folder")
def _(env):
    (env.out / "posterior.nc").mkdir()
    env.keep = ["posterior.nc"]
    return _fit(env, env.reduced, "--model", "pl"), "posterior.nc", "existing folder"


# --- the runner ---------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def env(small_sim, small_reduced, tmp_path, monkeypatch):
    """A private copy of the simulated dataset (``sc``) and an empty output folder (``out``)."""
    sc = tmp_path / "sc"
    shutil.copytree(small_sim.parent, sc)
    shutil.copy(small_reduced, sc / "reduced.h5")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)

    def never_sample(*args, **kwargs):  # every case must fail before any sampling
        raise AssertionError("sampling started: the bad input was not caught before it")

    for mod in ("fit", "fit_flim", "fit_pl", "sample"):
        module = importlib.import_module(f"bayes_sc.inference.{mod}")
        monkeypatch.setattr(module, "sample", never_sample)
    return SimpleNamespace(sc=sc, manifest=sc / "supercrystal.toml", reduced=sc / "reduced.h5",
                           out=out, keep=[], monkeypatch=monkeypatch)  # fmt: skip


@pytest.mark.parametrize(("name", "build"), list(CASES.values()))
def test_bad_input(name, build, env, capsys):
    args, file, problem = build(env)
    args = [str(a) for a in args]
    before = _snapshot(env.sc)
    status = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith(f"bayes-sc {args[0]}: error: ")]
    assert errors and errors == lines[-1:], err  # one error line, and it is the last
    message = errors[0]
    assert status == 2, message
    assert f"{file}: " in message or f"{file} " in message, message  # names the file
    assert problem in message, message  # and says what is wrong
    assert sorted(p.name for p in env.out.iterdir()) == sorted(env.keep)  # nothing written
    for kept in env.keep:
        path = env.out / kept
        assert not path.is_dir() or list(path.iterdir()) == []
    assert _snapshot(env.sc) == before  # inputs untouched, no stray file beside them
    log = os.environ.get("BAYES_SC_RELIABILITY_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(json.dumps({"case": name, "command": args, "message": message}) + "\n")


@needs_shared
def test_exit_status_of_the_console_script(small_sim, tmp_path):
    """The same failure through a real process: exit status 2, one stderr line, no output."""
    man = tmp_path / "point.toml"
    point = POINT_PTU.with_name("tsb_hydraharp_v20_t3.ptu")
    man.write_text(f'material = "cspbbr2cl"\n[flim]\nptu = "{point}"\n')
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "bayes_sc.cli", "reduce", str(man), "-o",
                           str(out / "reduced.h5")], capture_output=True, text=True, cwd=out,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"bayes-sc reduce: error: {point}: is a point measurement")
    assert list(out.iterdir()) == []
