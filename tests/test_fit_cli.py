"""`bayes-sc fit --model xray` end to end on one pixel: posterior.nc as SPEC §7 says."""

import numpy as np
import pytest
import xarray as xr

from bayes_sc.cli import main

SPEC7 = ("a1", "a2", "a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")
COORDS = ("xray_row", "xray_col", "xray_x_um", "xray_y_um", "xray_edge_um")


@pytest.mark.parametrize("likelihood", ["summary", "exact"])
def test_fit_writes_a_spec_posterior(small_reduced, tmp_path, capsys, likelihood):
    out = tmp_path / "posterior.nc"
    args = ["fit", str(small_reduced), "-o", str(out), "--model", "xray", "--crop", "2:3,2:4",
            "--draws", "10", "--tune", "10", "--seed", "3", "--quiet",
            "--likelihood", likelihood, "--posterior-predictive"]  # fmt: skip
    if likelihood == "exact":
        args += ["--target-accept", "0.85"]
    assert main(args) == 0
    tree = xr.open_datatree(out)
    assert {"posterior", "sample_stats", "observed_data"} <= set(tree.children)
    post = tree.posterior
    for name in SPEC7:
        assert post[name].dims == ("chain", "draw", "xray_pixel")
    assert post["a_AL"].dims == ("chain", "draw") and post["L_nc"].dims == ("chain", "draw")
    for c in COORDS:
        assert c in post.coords and post.coords[c].dims == ("xray_pixel",)
    assert post.sizes["xray_pixel"] == 2 and list(post["xray_row"].values) == [2, 2]
    assert np.all(np.isfinite(post["a_mean"].values))
    assert tree.attrs["sampler"] == "numpyro" and tree.attrs["seed"] == 3
    assert tree.attrs["likelihood"] == likelihood
    # 2 pixels: the preset's small-scan setting ([xray] target_accept_small_scan), or the flag's
    assert tree.attrs["target_accept"] == (0.9 if likelihood == "summary" else 0.85)
    observed = set(tree.observed_data.data_vars)
    # predictive draws of every observed quantity, shaped like the observations
    pp = tree.posterior_predictive
    for name in observed:
        assert pp[name].shape[2:] == tree.observed_data[name].shape
    if likelihood == "summary":  # windows without a usable summary stay exact Poisson
        assert {"saxs_summary", "waxs_summary"} <= observed
        assert observed <= {"saxs_summary", "waxs_summary", "saxs_counts_exact",
                            "waxs_counts_exact"}  # fmt: skip
    else:
        assert observed == {"saxs_counts", "waxs_counts"}
    # the joint model chooses each modality's crystal itself: one mask is refused, nothing written
    mask = tmp_path / "mask.npy"
    np.save(mask, np.ones((5, 6), bool))
    args = ["fit", str(small_reduced), "-o", str(tmp_path / "f.nc"), "--model", "joint",
            "--crystal-mask", str(mask)]  # fmt: skip
    assert main(args) == 2
    assert "--crystal-mask applies to one modality" in capsys.readouterr().err
    assert not (tmp_path / "f.nc").exists()


def test_each_model_keeps_its_default_draws(small_reduced, tmp_path, monkeypatch):
    """Without --draws every model samples its own default of 2000 kept draws."""
    import bayes_sc.inference.fit as fit_mod
    import bayes_sc.inference.fit_flim as fit_flim_mod

    seen = {}

    def fake(name):
        def run(reduced, preset, **kw):
            seen[name] = kw
            raise SystemExit(0)  # stop before sampling

        return run

    monkeypatch.setattr(fit_mod, "fit_xray", fake("xray"))
    monkeypatch.setattr(fit_flim_mod, "fit_flim", fake("flim"))
    for model in ("xray", "flim"):
        with pytest.raises(SystemExit):
            main(["fit", str(small_reduced), "-o", str(tmp_path / "p.nc"), "--model", model])
        assert "draws" not in seen[model]  # the model's own default applies
        assert "target_accept" not in seen[model]
    with pytest.raises(SystemExit):
        main(["fit", str(small_reduced), "-o", str(tmp_path / "p.nc"), "--draws", "7",
              "--target-accept", "0.95"])  # fmt: skip
    assert seen["xray"]["draws"] == 7 and seen["xray"]["target_accept"] == 0.95
    for wrong in ("1", "0", "-0.5"):
        assert main(["fit", str(small_reduced), "-o", str(tmp_path / "p.nc"),
                     "--target-accept", wrong]) == 2  # fmt: skip
    monkeypatch.undo()
    import inspect

    import bayes_sc.inference.fit_pl as fit_pl_mod

    fits = {"xray": fit_mod.fit_xray, "flim": fit_flim_mod.fit_flim, "pl": fit_pl_mod.fit_pl}
    defaults = {m: inspect.signature(f).parameters["draws"].default for m, f in fits.items()}
    assert defaults == {"xray": 2000, "flim": 2000, "pl": 2000}
