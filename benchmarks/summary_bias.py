"""Benchmark: are the WAXS Laplace summaries unbiased? Noisy and noise-free, against the truth.

For a simulated scan (``bayes-sc simulate DIR --scan NxN --seed S`` then ``bayes-sc reduce``;
``benchmarks/fit_xray.py`` leaves them in its work directory) it compares every usable WAXS
window summary (:mod:`bayes_sc.modeling.summaries`) with the simulator's true peak (q0, φ0,
log σ_q, log σ_φ), in units of the summary's own sd:

* **noisy**: the summaries the fit uses, from the scan's counts;
* **noise-free**: the same fits on each window's *expected* reduced counts (the simulator's own
  frame expectation, binned by the reduction's bin map), so what is left is the summary's
  deterministic error (the model's background structure, the binned-peak approximation, the
  nuisance priors). ``--template`` picks the substrate template the noise-free fits use:
  ``data`` (the one the fit uses, from the substrate frames), ``exact`` (the simulator's
  expected background) or ``none`` (no background in the counts nor the model).

Mean z per edge-distance band and per reflection, and the a_AL shift (in units of its sd)
that the windows' q0 errors imply in a weighted least-squares pooling. Usage::

    python benchmarks/summary_bias.py DIR [--template data|exact|none] [--no-noise-free]
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import h5py
import numpy as np

from bayes_sc.inference.fit import prepare_xray
from bayes_sc.modeling.summaries import summarise_windows
from bayes_sc.physics import waxs_reflections, wh_widths
from bayes_sc.physics.peaks import FWHM_PER_SIGMA, wrap_deg
from bayes_sc.presets import load_preset
from bayes_sc.simulate import expected_reduced_xray

EDGE_BANDS_UM = ((0.0, 0.6), (0.6, 1.1), (1.1, 2.1), (2.1, 3.1), (3.1, np.inf))
NAMES = ("q0", "phi0", "log_s_q", "log_s_phi")


def truth_peaks(tx, graph, preset):
    """(pixel, peak, 4) true (q0 [nm⁻¹], φ0 [degree], log σ_q, log σ_φ) and reflections' |q|."""
    hk = np.asarray(preset["xray"]["waxs_reflections"], float)
    hk = np.concatenate([hk, -hk])
    K = float(preset["constants"]["K_scherrer"]["value"])
    psi, dpsi, gq = (tx[k][()][graph.rows, graph.cols] for k in ("psi", "delta_psi", "g_q"))
    qw, pw = waxs_reflections(np.full(graph.n, float(tx["a_AL"][()])), psi, hk)
    wq, wp = wh_widths(qw, float(tx["L_nc"][()]), gq[:, None] / 100.0, dpsi[:, None], K)
    s = np.stack([wq, wp], -1) / FWHM_PER_SIGMA
    return np.stack([qw, pw, np.log(s[..., 0]), np.log(s[..., 1])], -1), s, qw[0]


def table(summ, true, edge, q_peak) -> dict:
    """Mean z by edge band and reflection, sd of z, and the implied a_AL shift [its sd]."""
    ok = summ.ok
    err = summ.theta[ok, :4] - true[summ.pix[ok], summ.peak[ok]]
    err[:, 1] = wrap_deg(err[:, 1])
    sd = summ.sd[ok, :4]
    z, e, peak = err / sd, edge[summ.pix[ok]], summ.peak[ok]
    out = {"windows": int(ok.sum()), "mean_z": z.mean(0).round(3).tolist(),
           "sd_z": z.std(0).round(3).tolist(), "by_edge_um": {}, "by_peak": {}}  # fmt: skip
    for lo, hi in EDGE_BANDS_UM:
        m = (e >= lo) & (e < hi)
        out["by_edge_um"][f"{lo}-{hi}"] = {
            "n": int(m.sum()),
            "mean_z": z[m].mean(0).round(3).tolist(),
            "se": 1 / np.sqrt(max(m.sum(), 1)),  # of a mean z whose sd is 1
        }
    for j in np.unique(peak):
        m = peak == j
        out["by_peak"][int(j)] = {"n": int(m.sum()), "mean_z": z[m].mean(0).round(3).tolist()}
    # a = 2π|hk|/q: each window's q0 error is a relative a_AL error −δq/q, weighted (q/sd)².
    q = q_peak[peak]
    w = (q / sd[:, 0]) ** 2
    out["a_AL_shift_sd"] = round(float(-(w * err[:, 0] / q).sum() / np.sqrt(w.sum())), 3)
    return out


def noise_free_windows(d, data, waxs, template):
    """The WAXS windows with each crystal pixel's expected reduced counts, and the template."""
    g = data.graph
    points = list(zip(g.rows, g.cols, strict=True))
    counts, exact = expected_reduced_xray(d, points, with_background=template != "none")
    if counts.shape[1] != data.bins["weight"].size:
        raise SystemExit("the rebuilt bin map does not match the reduced file's bins")
    bg = {"data": data.background, "exact": exact, "none": None}[template]
    return dataclasses.replace(waxs, counts=counts[waxs.pix, waxs.bin]), bg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="simulated scan directory (truth.h5, reduced.h5)")
    ap.add_argument("--template", choices=("data", "exact", "none"), default="data")
    ap.add_argument("--no-noise-free", action="store_true", help="only the noisy summaries")
    args = ap.parse_args()
    from pathlib import Path

    d = Path(args.dir)
    tx = h5py.File(d / "truth.h5")["xray"]
    preset = load_preset(h5py.File(d / "truth.h5").attrs["preset"])
    data, _first, _saxs, waxs, summ = prepare_xray(d / "reduced.h5", preset)
    true, s_true, q_peak = truth_peaks(tx, data.graph, preset)
    edge = tx["edge_um"][()][data.graph.rows, data.graph.cols]
    out = {"dir": str(d), "noisy": table(summ[1], true, edge, q_peak)}
    if not args.no_noise_free:
        win, bg = noise_free_windows(d, data, waxs, args.template)
        pr = preset["priors"]
        nuisance = (pr["background_scale"]["mu"], pr["background_scale"]["sigma"],
                    pr["flat_background"]["sigma"])  # fmt: skip
        # Started at the truth; no first-order bias correction (there is no noise).
        s = summarise_windows(win, data.bins, bg, s_true, nuisance_prior=nuisance,
                              bias_correct=False)  # fmt: skip
        out[f"noise_free_template_{args.template}"] = table(s, true, edge, q_peak)
    for name, t in out.items():
        if name == "dir":
            continue
        print(f"\n{name}: {t['windows']} windows, z = (summary − truth) / sd, columns {NAMES}")
        print(f"  all          mean z {t['mean_z']}  sd z {t['sd_z']}")
        for band, v in t["by_edge_um"].items():
            print(f"  edge {band:9s} n {v['n']:4d} mean z {v['mean_z']}  (se {v['se']:.3f})")
        for j, v in t["by_peak"].items():
            print(f"  reflection {j}  n {v['n']:4d} mean z {v['mean_z']}")
        print(f"  a_AL shift implied by the q0 errors: {t['a_AL_shift_sd']:+.3f} sd")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
