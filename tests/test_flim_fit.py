"""`bayes-sc fit --model flim` end to end: SPEC §7 output, recovery of the simulator's truth,
bad input, and the real PicoQuant image files."""

from __future__ import annotations

import h5py
import numpy as np
import xarray as xr
from conftest import shared_file

from bayes_sc.cli import main

COORDS = ("flim_row", "flim_col", "flim_x_um", "flim_y_um", "flim_edge_um")


def test_flim_fit_recovers_the_simulated_lifetimes(small_reduced, small_sim, tmp_path):
    out = tmp_path / "posterior.nc"
    args = ["fit", str(small_reduced), "-o", str(out), "--model", "flim", "--draws", "300",
            "--tune", "300", "--seed", "1", "--quiet", "--posterior-predictive"]  # fmt: skip
    assert main(args) == 0
    tree = xr.open_datatree(out)
    post = tree.posterior
    assert post["tau"].dims == ("chain", "draw", "flim_pixel")
    assert post["irf_shift"].dims == ("chain", "draw")
    for c in COORDS:
        assert post.coords[c].dims == ("flim_pixel",)
    pp = tree.posterior_predictive["flim_counts"]
    assert pp.shape[2:] == tree.observed_data["flim_counts"].shape
    with h5py.File(small_sim.parent / "truth.h5") as f:
        tau_true = f["flim"]["tau"][()][post["flim_row"].values, post["flim_col"].values]
        shift_true = float(f["flim"]["irf_shift"][()])
    draws = post["tau"].values.reshape(-1, tau_true.size)
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    cover = np.mean((tau_true >= lo) & (tau_true <= hi))
    # 95 pixels, nominal 0.90: binomial sd 0.03 (neighbours are correlated, so allow ~3 sd)
    assert 0.78 <= cover <= 0.99, cover
    s = post["irf_shift"].values.ravel()
    assert np.quantile(s, 0.005) <= shift_true <= np.quantile(s, 0.995)
    # the spatial posterior beats per-pixel ML (its RMSE here is ~0.06 ns)
    rmse = np.sqrt(np.mean((draws.mean(0) - tau_true) ** 2))
    assert rmse < 0.05, rmse
    assert int(tree.sample_stats["diverging"].sum()) == 0
    assert tree.attrs["target_accept"] == 0.65  # measured IRF: the preset's [flim] default
    # each pixel's own ML estimate and error, for the regression (no spatial prior in them)
    ml, se = tree.constant_data["tau_ml"].values, tree.constant_data["tau_ml_se"].values
    assert tree.constant_data["tau_ml"].dims == ("flim_pixel",)
    assert np.isfinite(ml).mean() > 0.9 and (se[np.isfinite(se)] > 0).all()
    z = ((ml - tau_true) / se)[np.isfinite(ml)]
    assert 0.7 < np.std(z) < 1.4, np.std(z)  # errors of the right size: independent of the prior


def test_flim_fit_bad_input(small_reduced, tmp_path, capsys):
    noflim = tmp_path / "noflim.h5"
    with h5py.File(small_reduced) as src, h5py.File(noflim, "w") as dst:
        src.copy("xray", dst)
    out = tmp_path / "p.nc"
    assert main(["fit", str(noflim), "-o", str(out), "--model", "flim", "--quiet"]) == 2
    assert "holds no FLIM data" in capsys.readouterr().err
    mask = tmp_path / "mask.txt"
    mask.write_text("0 1\n1 2\n")
    assert main(["fit", str(small_reduced), "-o", str(out), "--model", "flim",
                 "--crystal-mask", str(mask)]) == 2  # fmt: skip
    assert "2-D grid of 0/1" in capsys.readouterr().err
    assert not out.exists()


def test_real_ptu_image_fits_without_an_irf(tmp_path):
    """hazelnut_z1.ptu (PicoHarp, 256 x 256, ~10 photons per pixel): 16 x 16 bins, modelled IRF."""
    ptu = shared_file("ptu", "hazelnut_z1.ptu")
    manifest = tmp_path / "supercrystal.toml"
    manifest.write_text(f'name = "hazelnut"\nmaterial = "cspbbr2cl"\n[flim]\nptu = "{ptu}"\n')
    out = tmp_path / "posterior.nc"
    args = ["fit", str(manifest), "-o", str(out), "--model", "flim", "--flim-bin", "16",
            "--draws", "150", "--tune", "150", "--quiet"]  # fmt: skip
    assert main(args) == 0
    tree = xr.open_datatree(out)
    tau = tree.posterior["tau"].values
    assert tree.attrs["irf"] == "modelled" and tree.posterior.sizes["flim_pixel"] > 50
    assert tree.attrs["target_accept"] == 0.9  # the learned pulse shape needs the smaller steps
    assert np.all(np.isfinite(tau)) and 0.2 < np.median(tau) < 10.0
    # the modelled pulse's centre lies within the period (78 MHz: 12.8 ns), where its rise is
    centre = float(tree.posterior["irf_shift"].mean())
    assert 0.0 <= centre < 1e6 / 78.02, centre


def test_point_measurement_as_the_image_is_refused(tmp_path, capsys):
    ptu = shared_file("ptu", "tsb_hydraharp_v10_t3.ptu")
    manifest = tmp_path / "supercrystal.toml"
    manifest.write_text(f'name = "point"\nmaterial = "cspbbr2cl"\n[flim]\nptu = "{ptu}"\n')
    out = tmp_path / "posterior.nc"
    assert main(["fit", str(manifest), "-o", str(out), "--model", "flim", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tsb_hydraharp_v10_t3.ptu" in err and "point measurement, not an image scan" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [manifest]
