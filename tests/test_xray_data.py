"""Loading reduced X-ray data for the models: the crystal is found from the data."""

import h5py
import numpy as np
import pytest

from bayes_sc.errors import InputError
from bayes_sc.modeling.xray_data import (
    crystal_mask_from_data,
    load_xray,
    smooth_template,
    substrate_frames,
)


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
    with pytest.raises(InputError, match="crystal mask has shape"):  # would broadcast
        load_xray(small_reduced, crystal_mask=np.ones((1, d.scan_shape[1]), bool))
    other = tmp_path / "flim_only.h5"
    with h5py.File(other, "w") as f:
        f.create_group("flim")
    with pytest.raises(InputError, match="no X-ray data"):
        load_xray(other)


def test_smoothed_template_is_unbiased_and_quiet(small_sim, small_reduced):
    """The smoothed substrate template matches the simulator's noise-free background."""
    from bayes_sc.io.manifest import read_manifest
    from bayes_sc.physics import DetectorGeometry
    from bayes_sc.simulate.xray import kapton_template

    d = load_xray(small_reduced)
    cfg = read_manifest(small_sim).preset["simulate"]["xray"]
    keys = ("beam_center_x", "beam_center_y", "distance_mm", "wavelength_nm", "pixel_size_mm")
    maps = DetectorGeometry(*(cfg[k] for k in keys)).maps((2167, 2070))
    with h5py.File(small_reduced) as f:
        pb = f["xray/pixel_bin"][()]
    use = pb >= 0
    per_pixel = kapton_template(maps["q_nm_inv"], maps["intensity_factor"], cfg["background_level"])
    truth = np.bincount(pb[use], per_pixel[use], minlength=d.background.size)
    ratio = d.background / truth
    assert abs(ratio.mean() - 1) < 0.01
    # 4 background frames alone leave ~18 % noise per bin; smoothed, a few per cent
    waxs = d.bins["region"] == 1
    assert ratio[waxs].std() < 0.05
    # the scan points off the crystal join the background frames: quieter by about the
    # square root of the exposure they add (this small scan has none 2 points from the crystal)
    assert not substrate_frames(d.crystal_mask, d.frame_excluded).any()
    d = load_xray(small_reduced, substrate_margin=0)
    ratio = d.background / truth
    with h5py.File(small_reduced) as f:
        a = f["xray"].attrs
        frames_only = smooth_template(f["xray/background_counts"][()].astype(float), d.bins)
        frames_only *= a["count_time_s"] / a["background_exposure_s"]
        gain = 1 + a["count_time_s"] * substrate_frames(d.crystal_mask, d.frame_excluded, 0).sum() \
            / a["background_exposure_s"]  # fmt: skip
    assert gain > 2
    alone = (frames_only / truth)[waxs].std()
    assert 0.5 < alone / ratio[waxs].std() / np.sqrt(gain) < 2


def test_substrate_frames_keep_away_from_the_crystal():
    crystal = np.zeros((7, 8), bool)
    crystal[3, 3] = True
    excluded = np.zeros(56, bool)
    excluded[0] = True
    sub = substrate_frames(crystal, excluded, margin=2).reshape(7, 8)
    assert not sub[1:6, 1:6].any()  # within 2 points (8-neighbourhood) of the crystal
    assert sub[0, 1] and sub[6, 7] and sub[3, 6] and not sub[0, 0]  # excluded frame 0
