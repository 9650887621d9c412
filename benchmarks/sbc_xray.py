# ruff: noqa: E501  (a benchmark script: long report lines read better unwrapped)
"""Simulation-based calibration (Talts et al. 2018) of the X-ray model on a small grid.

The model is the default one (summary likelihood) of a crop of a reduced scan: its windows,
Laplace-summary covariances and prior centres are fixed once. Each replicate draws every
parameter from the prior and the summaries from the likelihood (``pm.sample_prior_predictive``),
refits the model to those summaries with NUTS (numpyro, 1 chain per replicate, started at
the drawn values — they only set the start), and records the rank of the drawn value among
``--keep`` thinned posterior draws, for a_mean, delta_psi and g_q at every crop pixel and for the
field means. If the model is sampled correctly the ranks are uniform: the script prints χ²
p-values of 10-bin rank histograms (per quantity: the crop's centre pixel, one rank per
replicate) and saves the histograms. Replicates run in ``--workers`` processes; each one is
logged to ``OUT.replicates.jsonl`` as it finishes, and rerunning the command resumes from there.

    python benchmarks/sbc_xray.py --reduced reduced.h5 --crop 1:4,2:5 --replicates 100

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

QUANTITIES = ("a_mean", "delta_psi", "g_q")
BINS = 10


def _setup(reduced, crop):
    from bayes_sc.baseline import baseline_xray
    from bayes_sc.inference.fit import parse_crop
    from bayes_sc.modeling.summaries import xray_summaries
    from bayes_sc.modeling.windows import xray_windows
    from bayes_sc.modeling.xray_data import load_xray
    from bayes_sc.presets import load_preset

    preset = load_preset("cspbbr2cl")
    data = load_xray(reduced)
    mask = np.zeros(data.scan_shape, bool)
    mask[parse_crop(crop)] = True
    data = load_xray(reduced, crystal_mask=data.crystal_mask & mask)
    first = baseline_xray(data, preset)
    saxs, waxs = xray_windows(data, first, preset)
    summ = tuple(s.usable() for s in xray_summaries(data, preset, saxs, waxs, first))
    return data, preset, first, saxs, waxs, summ


def _replicate(args):
    """One SBC replicate: (ranks per quantity (n_pixels,), divergences, max tree depth)."""
    reduced, crop, seed, draws, tune, keep = args
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    import pymc as pm

    from bayes_sc.inference.sample import sample
    from bayes_sc.modeling.summaries import PeakSummaries
    from bayes_sc.modeling.xray import build_xray_model, with_exact_counts

    data, preset, first, saxs, waxs, summ = _setup(reduced, crop)
    model = build_xray_model(data, preset, saxs, waxs, first, summ)
    prior = pm.sample_prior_predictive(draws=1, model=model, random_seed=seed)
    truth = prior["prior"].to_dataset().isel(chain=0, draw=0)
    pp = prior["prior_predictive"].to_dataset().isel(chain=0, draw=0)
    new = []
    for name, s in zip(("saxs_summary", "waxs_summary"), summ, strict=True):
        theta = np.einsum("wij,wj->wi", s.chol, pp[name].values)  # un-whiten: θ̂ = L z
        new.append(PeakSummaries(s.pix, s.peak, theta, s.chol, s.ok, s.counts))
    merge = preset["xray"]["unsummarised_merge"]
    wins = [w if f"{r}_counts_exact" not in pp else
            with_exact_counts(w, s, pp[f"{r}_counts_exact"].values, data.bins, merge[r])
            for r, w, s in zip(("saxs", "waxs"), (saxs, waxs), summ, strict=True)]  # fmt: skip
    refit = build_xray_model(data, preset, *wins, first, tuple(new))
    init = {v.name: truth[v.name].values for v in refit.free_RVs}
    tree = sample(refit, chains=1, draws=draws, tune=tune, seed=seed, progress=False, initvals=init)
    post = tree["posterior"].to_dataset()
    step = max(1, draws // keep)
    ranks = {}
    for q in QUANTITIES:
        d = post[q].values[0, ::step][:keep]  # (keep, n_pixels)
        ranks[q] = (d < truth[q].values[None, :]).sum(0)
        mu = f"{q}_mu"
        if mu in post:
            ranks[mu] = np.atleast_1d((post[mu].values[0, ::step][:keep] < truth[mu].values).sum())
    ss = tree["sample_stats"].to_dataset()
    return (
        {k: v.tolist() for k, v in ranks.items()},
        int(ss["diverging"].sum()),
        int(ss["tree_depth"].max()),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reduced", type=Path, required=True)
    ap.add_argument("--crop", default="1:4,2:5")
    ap.add_argument("--replicates", type=int, default=100)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=700)
    ap.add_argument("--keep", type=int, default=99, help="thinned draws a rank is taken among")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("sbc_xray.json"))
    args = ap.parse_args()
    from scipy.stats import chisquare

    jobs = {
        1000 + r: (args.reduced, args.crop, 1000 + r, args.draws, args.tune, args.keep)
        for r in range(args.replicates)
    }
    # every finished replicate is appended to a JSON-lines log at once, so a run that is stopped
    # (or a worker that crashes) loses nothing: rerunning the same command resumes from it
    done_log = args.out.with_suffix(".replicates.jsonl")
    done = {}
    if done_log.exists():
        for line in done_log.read_text().splitlines():
            rec = json.loads(line)
            if rec["seed"] in jobs:
                done[rec["seed"]] = (rec["ranks"], rec["divergences"], rec["max_depth"])
        print(f"resuming: {len(done)} replicates already in {done_log}", flush=True)
    t0 = time.perf_counter()
    todo = [s for s in jobs if s not in done]
    while todo:
        # fresh interpreters (not fork: JAX is multithreaded), one replicate each, so a crash
        # in XLA costs one replicate, which is then retried
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {pool.submit(_replicate, jobs[s]): s for s in todo}
            try:
                for fut in as_completed(futures):
                    seed = futures[fut]
                    done[seed] = fut.result()
                    with done_log.open("a") as f:
                        ranks, div, depth = done[seed]
                        f.write(json.dumps({"seed": seed, "ranks": ranks, "divergences": div,
                                            "max_depth": depth}) + "\n")  # fmt: skip
                    if len(done) % 10 == 0:
                        print(f"{len(done)}/{len(jobs)} replicates, "
                              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
            except BrokenProcessPool as exc:
                print(f"a worker died ({exc}); restarting the pool", flush=True)
        todo = [s for s in jobs if s not in done]
    results = [done[s] for s in sorted(jobs)]
    names = list(results[0][0])
    n_pix = len(results[0][0][QUANTITIES[0]])
    centre = n_pix // 2
    out = {"replicates": len(results), "keep": args.keep, "crop": args.crop, "pixels": n_pix,
           "wall_s": time.perf_counter() - t0, "divergent_replicates": int(sum(r[1] > 0 for r in results)),
           "quantities": {}}  # fmt: skip
    print(
        f"{'quantity':14s} {'χ² p (centre px)':>17s} {'χ² p (all px pooled)':>21s}  histogram (centre pixel)"
    )
    for name in names:
        r = np.array([res[0][name] for res in results])  # (replicates, n)
        pick = r[:, min(centre, r.shape[1] - 1)]
        hist = np.histogram(pick, bins=BINS, range=(0, args.keep + 1))[0]
        pooled = np.histogram(r.ravel(), bins=BINS, range=(0, args.keep + 1))[0]
        p = float(chisquare(hist).pvalue)
        p_all = float(chisquare(pooled).pvalue)
        out["quantities"][name] = {
            "p_centre": p,
            "p_pooled": p_all,
            "hist_centre": hist.tolist(),
            "hist_pooled": pooled.tolist(),
        }
        print(f"{name:14s} {p:17.3f} {p_all:21.3f}  {hist.tolist()}")
        # Do replicates with divergences lean? Their ranks' mean against those without (the
        # ranks of a calibrated posterior average keep / 2 either way).
        div = np.array([res[1] > 0 for res in results])
        for label, m in (("with_divergences", div), ("without_divergences", ~div)):
            if m.sum() >= BINS:
                h = np.histogram(r[m, min(centre, r.shape[1] - 1)], bins=BINS,
                                 range=(0, args.keep + 1))[0]  # fmt: skip
                out["quantities"][name][label] = {
                    "replicates": int(m.sum()),
                    "mean_rank": float(r[m].mean()),
                    "p_centre": float(chisquare(h).pvalue),
                }
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
