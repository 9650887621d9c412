"""Reproducibility and provenance: same inputs and seed → identical draws; every output records
the package version, its inputs' hashes, settings and seed."""

import hashlib
import json

import numpy as np
import pytest
import xarray as xr

from bayes_sc import __version__
from bayes_sc.provenance import (
    file_hash,
    input_files,
    matches,
    provenance,
    read_attrs,
    settings_record,
)

# PL is the quickest model to compile and sample; short chains keep the three fits cheap.
FIT = dict(model="pl", chains=1, tune=30, draws=20, progress=False)


@pytest.fixture(scope="module")
def pl_fits(small_reduced, tmp_path_factory):
    """Three PL posteriors of one crystal: seeds 5, 5 and 6."""
    from bayes_sc.inference.fit import fit

    out = tmp_path_factory.mktemp("prov")
    return [fit(small_reduced, out / f"p{k}.nc", seed=s, **FIT) for k, s in enumerate((5, 5, 6))]


def _draws(path) -> dict:
    post = xr.open_datatree(path)["posterior"].to_dataset()
    return {k: post[k].values for k in post.data_vars}


def test_same_seed_identical_draws_other_seed_differs(pl_fits):
    a, b, c = (_draws(p) for p in pl_fits)
    assert a.keys() == b.keys() and "E_peak" in a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # bit for bit
    assert not np.array_equal(a["E_peak"], c["E_peak"])


def test_posterior_records_version_inputs_settings_seed(pl_fits, small_reduced):
    attrs = xr.open_datatree(pl_fits[0]).attrs
    assert attrs["bayes_sc_version"] == __version__
    assert json.loads(attrs["inputs"]) == {str(small_reduced.resolve()): file_hash(small_reduced)}
    settings = json.loads(attrs["settings"])
    assert settings["model"] == "pl" and settings["draws"] == 20 and settings["chains"] == 1
    assert "progress" not in settings and "seed" not in settings
    assert int(attrs["seed"]) == 5 and attrs["created_utc"].endswith("+00:00")
    # what batch does to decide that the output is current
    run = dict(FIT, crop=None, crystal_mask=None, flim_bin=1, flim_merge=None,
               likelihood="summary")  # fmt: skip
    inputs = {str(small_reduced.resolve()): file_hash(small_reduced)}
    assert matches(read_attrs(pl_fits[0]), inputs, run, 5)
    assert not matches(read_attrs(pl_fits[0]), inputs, run, 6)
    assert not matches(read_attrs(pl_fits[0]), inputs, run | {"draws": 21}, 5)


def test_reduced_records_every_input_file(small_sim, small_reduced):
    attrs = read_attrs(small_reduced)
    recorded = json.loads(attrs["inputs"])
    files = input_files(small_sim)
    assert set(recorded) == {str(f) for f in files}
    names = {f.name for f in files}
    # the manifest, the EIGER masters and the data files they link to, PTU, IRF, spectra
    assert {"supercrystal.toml", "scan_master.h5", "scan_data_000001.h5", "map.ptu",
            "spectra.h5"} <= names  # fmt: skip
    for path, digest in recorded.items():
        assert digest == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert json.loads(attrs["settings"]) == {} and "seed" not in attrs


def test_provenance_and_matches(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes(b"x" * 3_000_000)  # several read chunks
    assert file_hash(f) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    rec = provenance([f], {"model": "xray", "progress": True, "out": tmp_path}, seed=1)
    assert set(rec) == {"bayes_sc_version", "inputs", "settings", "seed", "created_utc"}
    assert json.loads(rec["settings"]) == {"model": "xray", "out": str(tmp_path)}
    inputs = {str(f): file_hash(f)}
    assert matches(rec, inputs, {"model": "xray", "out": tmp_path}, 1)
    assert not matches(rec, {str(f): "0" * 64}, {"model": "xray", "out": tmp_path}, 1)
    assert not matches({}, inputs, {}, None)
    assert settings_record(crop=(1, 2), seed=3) == {"crop": [1, 2]}
    assert read_attrs(f) == {}  # not HDF5: nothing recorded


def test_regression_records_posteriors_and_settings_file(tmp_path):
    from bayes_sc.presets import load_preset, preset_dir
    from bayes_sc.regress import regress
    from bayes_sc.simulate.posteriors import synthetic_crystal

    rng = np.random.default_rng(3)
    c = synthetic_crystal(tmp_path / "c", load_preset("cspbbr2cl"), rng, scan=(10, 10), draws=50)
    files = [c["xray"], c["flim"], c["pl"]]
    out, _ = regress(files, tmp_path / "regression.nc", chains=1, draws=20, tune=20, seed=2,
                     progress=False)  # fmt: skip
    attrs = read_attrs(out)
    toml = (preset_dir() / "regression.toml").resolve()
    assert json.loads(attrs["inputs"]) == {str(p.resolve()): file_hash(p) for p in [*files, toml]}
    assert json.loads(attrs["settings"])["draws"] == 20 and attrs["seed"] == 2
