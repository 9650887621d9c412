"""Shared fixtures and seeds. Tests that need ../shared skip with a clear reason without it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"
SEED = 20261125


@pytest.fixture
def rng():
    """A fixed-seed generator: every test that draws random numbers uses it."""
    return np.random.default_rng(SEED)


def shared_file(*parts: str) -> Path:
    """Path of a real instrument file in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real instrument file {path} not available (../shared is absent)")
    return path


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory):
    """A small simulated supercrystal (5x6 scan) in the real file formats, shared by tests."""
    from bayes_sc.simulate import simulate_supercrystal

    out = tmp_path_factory.mktemp("sim") / "sc"
    return simulate_supercrystal(out, scan_shape=(5, 6), seed=7, progress=False)


@pytest.fixture(scope="session")
def small_reduced(small_sim, tmp_path_factory):
    """``reduced.h5`` of :func:`small_sim`."""
    from bayes_sc.reduce import reduce_dataset

    out = tmp_path_factory.mktemp("reduced") / "reduced.h5"
    reduce_dataset(small_sim, out, progress=False)
    return out


@pytest.fixture(scope="session")
def xray_inputs(small_reduced):
    """What the X-ray model is built from: (data, preset, first estimates, SAXS, WAXS windows)."""
    from bayes_sc.baseline import baseline_xray
    from bayes_sc.modeling.windows import xray_windows
    from bayes_sc.modeling.xray_data import load_xray
    from bayes_sc.presets import load_preset

    preset = load_preset("cspbbr2cl")
    data = load_xray(small_reduced)
    first = baseline_xray(data, preset)
    saxs, waxs = xray_windows(data, first, preset)
    return data, preset, first, saxs, waxs
