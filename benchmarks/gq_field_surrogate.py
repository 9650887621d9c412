"""Benchmark: the g_q field's prior, tried in seconds on a surrogate of the X-ray posterior.

g_q is the one X-ray field whose pixels the data barely resolve (one percentage point of g_q moves a
WAXS peak's radial width by ~3–10 %, against a width measured to ~3.6 % per window), so its
per-pixel intervals are what the spatial prior says about structure below the data's reach.
A full 25 × 25 fit takes 7 min; this surrogate keeps only what g_q's posterior depends on and
samples in ~40 s, so priors can be compared on several seeds:

* the data: every usable WAXS window's Laplace summary of log σ_q (the fit's own summaries),
  conditioned on its q0 and log σ_φ at their true values (the full model pins those through
  a_AL, ψ and δψ to far better than one window does);
* the model: log g_q = μ + (BYM2 field over the crystal's 4-neighbour graph, the presets'
  hyperpriors), σ_q from Williamson–Hall with the true L_nc, and each window's summary
  ~ N(log σ_q, its conditional sd).

On the ICAR prior (the default before session 36) it reproduces the full fit (seed 3: coverage
0.970 vs 0.976, posterior sd 0.157 vs 0.160 %, RMSE 0.118 vs 0.112 %, g_q_sd 0.140 vs 0.142,
ρ 0.84 vs 0.86). ``--variant`` (the sampler's own parameterisation; the presets' g_q field is
``q2_rho41``): ``icar`` (ICAR structured part, ρ ~ Beta(2, 2)), ``icar_rho41`` (ρ ~ Beta(4, 1)),
``q2`` / ``q2_rho41`` (structured part of order 2, precision Q²), ``q3`` (order 3), ``trend`` (a
quadratic mean in edge distance plus the ICAR BYM2 field). Usage::

    python benchmarks/gq_field_surrogate.py DIR [DIR ...] [--variant icar q2_rho41 trend]
    python benchmarks/gq_field_surrogate.py DIR --variant q2_rho41 --calibrated 20

``--calibrated N`` asks how far one scan's coverage strays when the model is right: N fields
drawn from the model at the hyperparameters fitted to DIR, their summaries simulated with
DIR's window sds, each refitted (docs/benchmarks.md, "How far one scan's coverage strays").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
from summary_bias import truth_peaks  # (benchmarks/ is the script's own directory)

from bayes_sc.inference.fit import prepare_xray
from bayes_sc.physics import FWHM_PER_SIGMA, wh_widths
from bayes_sc.physics._xp import array_module
from bayes_sc.presets import load_preset


def window_data(d: Path):
    """Conditional log σ_q summaries (value, sd, pixel, |q|) and the truth of one scan."""
    with h5py.File(d / "truth.h5") as f:
        preset = load_preset(f.attrs["preset"])
        tx = {k: v[()] for k, v in f["xray"].items() if k != "outline_um"}
    data, _first, _saxs, _waxs, summ = prepare_xray(d / "reduced.h5", preset)
    s, g = summ[1], data.graph
    true, _s, q_peak = truth_peaks(tx, g, preset)  # (arrays index with [()] as datasets do)
    cov = np.einsum("wij,wkj->wik", s.chol, s.chol)
    o = [0, 3]  # q0, log σ_φ: conditioned on at their true values
    k = np.linalg.solve(cov[:, o][:, :, o], cov[:, 2, o][..., None])[..., 0]
    t_o = true[s.pix, s.peak][:, o]
    value = s.theta[:, 2] + np.einsum("wi,wi->w", k, t_o - s.theta[:, o])
    var = cov[:, 2, 2] - np.einsum("wi,wi->w", cov[:, 2, o], k)
    rc = (g.rows, g.cols)
    truth = {"g_q": tx["g_q"][rc], "edge_um": tx["edge_um"][rc], "L_nc": float(tx["L_nc"])}
    K = float(preset["constants"]["K_scherrer"]["value"])
    return value, np.sqrt(var), s.pix, q_peak[s.peak], g, truth, K


#: variant -> (order of the structured part, Beta prior of ρ); "trend" adds an edge-distance mean.
VARIANTS = {
    "icar": (1, (2.0, 2.0)),
    "icar_rho41": (1, (4.0, 1.0)),
    "q2": (2, (2.0, 2.0)),
    "q2_rho41": (2, (4.0, 1.0)),
    "q3": (3, (2.0, 2.0)),
    "trend": (1, (2.0, 2.0)),
}


def log_sigma_q(g_pct, pix, q, L_nc, K):
    """log radial σ of every window from Williamson–Hall (numpy or JAX): g_q [%] per pixel,
    ``pix`` each window's pixel, q [nm⁻¹] per window, L_nc [nm], K the Scherrer factor."""
    w_q, _ = wh_widths(q, L_nc, g_pct[..., pix] / 100.0, 0.0, K)
    return array_module(w_q).log(w_q / FWHM_PER_SIGMA)


def draw_field(graph, variant, mu, sigma, rho, rng):
    """One g_q field [%] from the surrogate's prior at fixed hyperparameters (log scale μ, σ, ρ)."""
    order, _ = VARIANTS[variant]
    v = graph.structured_variance(order)
    z = rng.standard_normal(graph.eigvecs.shape[1])
    return 100.0 * np.exp(mu + graph.eigvecs @ (sigma * np.sqrt(rho * v + 1.0 - rho) * z))


def fit_surrogate(value, sd, pix, q, graph, truth, K, variant, seed=0):
    """NUTS (numpyro, 2 × (1000 + 1000)) on the surrogate; returns the g_q field's draws [%]
    and the posterior means of σ, ρ and μ."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)
    V = jnp.asarray(graph.eigvecs)
    order, rho_ab = VARIANTS[variant]
    v = jnp.asarray(graph.structured_variance(order))
    edge = truth["edge_um"]
    t = (edge - edge.mean()) / edge.std()

    def model():
        # log of g_q as a fraction: centred on 1.5 %
        mu = numpyro.sample("mu", dist.Normal(np.log(0.015), 1.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(0.5))  # the presets' g_q sd_scale
        rho = numpyro.sample("rho", dist.Beta(*rho_ab))  # [spatial] field_rho
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([V.shape[1]]))
        f = mu + V @ (sigma * jnp.sqrt(rho * v + 1.0 - rho) * z)
        if variant == "trend":
            b = numpyro.sample("b", dist.Normal(0.0, 0.5).expand([2]))
            f = f + b[0] * t + b[1] * (t**2 - 1.0)
        g = numpyro.deterministic("g_q", 100.0 * jnp.exp(f))
        log_s = log_sigma_q(g, pix, q, truth["L_nc"], K)
        numpyro.sample("obs", dist.Normal(log_s, sd), obs=value)

    mcmc = MCMC(NUTS(model, target_accept_prob=0.9), num_warmup=1000, num_samples=1000,
                num_chains=2, chain_method="sequential", progress_bar=False)  # fmt: skip
    mcmc.run(jax.random.PRNGKey(seed), extra_fields=("diverging",))
    draws = mcmc.get_samples()
    div = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    hyper = {k: float(draws[k].mean()) for k in ("sigma", "rho", "mu")}
    return np.asarray(draws["g_q"]), hyper, div


def summarise(g, tr):
    """Coverage of the 90 % intervals, RMSE and sd [%] and rms z of draws ``g`` against ``tr``."""
    lo, hi = np.percentile(g, [5, 95], axis=0)
    mean, post_sd = g.mean(0), g.std(0)
    return {"coverage90": float(np.mean((tr >= lo) & (tr <= hi))),
            "rmse_pct": float(np.sqrt(np.mean((mean - tr) ** 2))),
            "mean_sd_pct": float(post_sd.mean()),
            "rms_z": float(np.sqrt(np.mean(((tr - mean) / post_sd) ** 2)))}  # fmt: skip


def calibrated(value, sd, pix, q, graph, truth, K, variant, n, seed=0):
    """Per-scan coverage of a model that is right: ``n`` g_q fields drawn from the surrogate's
    prior at the hyperparameters fitted to the scan, their summaries simulated with the scan's
    own window sds, each refitted. The spread of the coverages over these replicates is the
    chance variation of one scan's per-pixel coverage when the model holds exactly."""
    _g, hyper, _div = fit_surrogate(value, sd, pix, q, graph, truth, K, variant)
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n):
        tr = draw_field(graph, variant, hyper["mu"], hyper["sigma"], hyper["rho"], rng)
        sim = log_sigma_q(tr, pix, q, truth["L_nc"], K) + sd * rng.standard_normal(sd.shape)
        g, h, div = fit_surrogate(sim, sd, pix, q, graph, truth, K, variant, seed=r + 1)
        row = {"replicate": r, **summarise(g, tr), **h, "divergences": div}
        rows.append(row)
        print(f"replicate {r} cover {row['coverage90']:.3f} rms z {row['rms_z']:.2f} div {div}")
    cov = np.array([row["coverage90"] for row in rows])
    return {"hyper": hyper, "replicates": rows, "coverage_mean": float(cov.mean()),
            "coverage_sd": float(cov.std(ddof=1)),
            "share_in_85_95": float(np.mean((cov >= 0.85) & (cov <= 0.95)))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+", type=Path, help="simulated scans (truth.h5, reduced.h5)")
    ap.add_argument("--variant", nargs="+", default=["icar", "q2_rho41"],
                    choices=tuple(VARIANTS))  # fmt: skip
    ap.add_argument("--calibrated", type=int, default=0, metavar="N",
                    help="instead: N replicates drawn from the fitted model (chance spread of "
                         "one scan's coverage when the model is right)")  # fmt: skip
    args = ap.parse_args()
    rows = []
    for d in args.dirs:
        value, sd, pix, q, graph, truth, K = window_data(d)
        for variant in args.variant:
            if args.calibrated:
                res = calibrated(value, sd, pix, q, graph, truth, K, variant, args.calibrated)
                rows.append({"dir": str(d), "variant": variant, **res})
                print(f"{d.name} {variant}: coverage {res['coverage_mean']:.3f} ± "
                      f"{res['coverage_sd']:.3f} (sd over replicates), "
                      f"{res['share_in_85_95']:.2f} of scans in 85-95 %")  # fmt: skip
                continue
            g, hyper, div = fit_surrogate(value, sd, pix, q, graph, truth, K, variant)
            row = {"dir": str(d), "variant": variant, **summarise(g, truth["g_q"]),
                   **hyper, "divergences": div}  # fmt: skip
            sigma, rho = hyper["sigma"], hyper["rho"]
            rows.append(row)
            print(
                f"{d.name} {variant:6s} cover {row['coverage90']:.3f} "
                f"rmse {row['rmse_pct']:.3f} % sd {row['mean_sd_pct']:.3f} % "
                f"rms z {row['rms_z']:.2f} sigma {sigma:.3f} rho {rho:.2f} div {div}"
            )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
