"""Loading reduced X-ray data for the models: the crystal is found from the data."""

import h5py
import numpy as np
import pytest

from bayes_sc.errors import InputError
from bayes_sc.modeling.xray_data import crystal_mask_from_data, load_xray


def test_crystal_mask_from_data_recovers_the_truth(small_sim, small_reduced):
    d = load_xray(small_reduced)
    with h5py.File(small_sim.parent / "truth.h5") as t:
        truth = t["xray/mask"][()]
    np.testing.assert_array_equal(d.crystal_mask, truth)
    c = d.coords()
    assert set(c) == {"xray_row", "xray_col", "xray_x_um", "xray_y_um", "xray_edge_um"}
    assert all(v.shape == (d.graph.n,) for v in c.values())
    assert np.all(c["xray_edge_um"] > 0)
    np.testing.assert_array_equal(d.frames, np.flatnonzero(truth.ravel()))
    # without background frames the two groups are split from the data alone
    otsu = crystal_mask_from_data(d.counts, None, d.bins["region"], d.scan_shape)
    np.testing.assert_array_equal(otsu, truth)


def test_override_and_bad_input(small_reduced, tmp_path):
    d = load_xray(small_reduced)
    mask = np.zeros(d.scan_shape, bool)
    mask[1:3, 1:3] = True
    assert load_xray(small_reduced, crystal_mask=mask).graph.n == 4
    with pytest.raises(InputError, match="no crystal"):
        load_xray(small_reduced, crystal_mask=np.zeros(d.scan_shape, bool))
    other = tmp_path / "flim_only.h5"
    with h5py.File(other, "w") as f:
        f.create_group("flim")
    with pytest.raises(InputError, match="no X-ray data"):
        load_xray(other)
