"""The fast likelihood: every peak window summarised by its own Poisson fit (Laplace).

Each (pixel, peak) window's binned counts are fitted alone by Poisson maximum likelihood, with
the same forward model as the exact likelihood (:func:`~bayes_sc.physics.binned_peak_counts`):
the peak's centre (q0 [nm⁻¹], φ0 [degree]), log standard deviations and log integrated
intensity, plus two background nuisances (the substrate template's scale and a flat density,
both fitted on a log scale) under the exact model's per-window priors (the preset's
``background_scale`` and ``flat_background``), so that both likelihoods describe one model.
All windows are fitted at once (JAX, Fisher scoring with Levenberg–Marquardt damping).

The summary of a window is the Gaussian N(θ̂, F⁻¹) of its five peak parameters, θ̂ less its
first-order bias (:func:`poisson_mle_bias`), with the nuisances marginalised (the 5 × 5
block of the inverse of F, the Fisher information plus the nuisance prior's curvature). In
the model the window's counts are replaced by ``θ̂ ~ N(θ(fields), F⁻¹)``: the Laplace
approximation of the window's Poisson likelihood. It is accurate where a window holds a
clearly detected peak; a window whose fit does not converge, runs into the window's edge,
whose intensity is not detected (sd of log I0 above ``MAX_SD_LOG_I0``), whose bias is not
small (``MAX_BIAS_SD``) or whose peak lies partly off the detector (less than
``MIN_OBSERVED`` of it on observed bins) carries no summary: the model keeps the exact
Poisson likelihood of its bins (:func:`.xray.unsummarised`), so no window's information is
lost. The exact Poisson model on every window (:mod:`.xray`) is the reference the summaries
are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics import binned_peak_counts
from ..physics.peaks import wrap_deg
from .windows import Windows, fill_missing, padded_layout

PARAMS = ("q0", "phi0", "log_s_q", "log_s_phi", "log_I0")
N_PEAK, N_ALL = 5, 7
MAX_SD_LOG_I0 = 0.25  # a peak detected at ≥ 4 σ: its log-intensity likelihood is near Gaussian
MAX_BIAS_SD = 0.5  # a window whose MLE bias exceeds this many sd is left out (not asymptotic)
# A weak peak cut by the detector's edge (or a wide gap) leaves its centre and width to one
# tail: the estimates are then biased beyond first order (WAXS, measured on a 25 x 25 scan: φ0
# by +0.5 sd, log I0 by −0.35 sd where less than 85 % of the peak is on the detector), so such
# windows carry no summary. SAXS peaks (~10⁴ counts) stay calibrated even half cut (no limit).
MIN_OBSERVED = 0.8


@dataclass
class PeakSummaries:
    """Laplace summaries of one region's peak windows.

    Attributes
    ----------
    pix, peak : (W,) crystal-pixel and peak index of each window.
    theta : (W, 5) MLE of (q0 [nm⁻¹], φ0 [degree], log σ_q, log σ_φ, log I0).
    chol : (W, 5, 5) Cholesky factor of the marginal covariance of ``theta``.
    ok : (W,) the fit converged inside the window and detected the peak.
    counts : (W,) total counts in the window.
    observed : (W,) fraction of the fitted peak's integral that falls on the window's
        (unmasked, on-detector) bins.
    """

    pix: np.ndarray
    peak: np.ndarray
    theta: np.ndarray
    chol: np.ndarray
    ok: np.ndarray
    counts: np.ndarray
    observed: np.ndarray | None = None

    def usable(self) -> PeakSummaries:
        """Only the windows whose summary enters the model."""
        k = self.ok
        obs = None if self.observed is None else self.observed[k]
        return PeakSummaries(
            self.pix[k], self.peak[k], self.theta[k], self.chol[k], k[k], self.counts[k], obs
        )

    @property
    def sd(self) -> np.ndarray:
        """(W, 5) marginal standard deviations of ``theta``."""
        return np.sqrt(np.einsum("wij,wij->wi", self.chol, self.chol))


def poisson_mle_bias(mu_fn, p, cov, mask=1.0):
    """First-order bias of the maximum-likelihood estimate from Poisson counts (JAX).

    For counts y_i ~ Poisson(μ_i(θ)) Cox & Snell's (1968) O(1/counts) bias of θ̂ reduces to
    Box's (1971) nonlinear-regression form

        b = −½ F⁻¹ Jᵀ W h,   W = diag(1/μ),   h_i = tr(F⁻¹ ∂²μ_i/∂θ²),

    with J = ∂μ/∂θ and F = Jᵀ W J the Fisher information. A window's own bias is a small
    fraction of its standard error, but ~10³ windows add it up in the global parameters
    (a_AL, L_nc) at the level of their posterior sd, so every summary is corrected by it.

    Parameters
    ----------
    mu_fn : θ (P,) → expected counts (L,).
    p : (P,) the estimate θ̂.
    cov : (P, P) F⁻¹ at θ̂.
    mask : (L,) 1 for observed bins, 0 for padding.
    """
    import jax
    import jax.numpy as jnp

    # h via forward-mode second directional derivatives along the columns of chol(F⁻¹):
    # P passes of (L,) instead of the (L, P, P) Hessian.
    n = p.shape[0]
    chol = jnp.linalg.cholesky(0.5 * (cov + cov.T) + 1e-300 * jnp.eye(n))

    def along(c):
        return jax.jvp(lambda x: jax.jvp(mu_fn, (x,), (c,))[1], (p,), (c,))[1]

    h = jax.vmap(along, in_axes=1)(chol).sum(0)
    mu = mu_fn(p)
    J = jax.jacfwd(mu_fn)(p)
    return -0.5 * cov @ (J.T @ (mask * h / mu))


def _padded(win: Windows, bins: dict, background) -> tuple[dict, np.ndarray, np.ndarray]:
    """Window elements as (W, L) arrays (padding masked) and each window's (pixel, peak)."""
    lay = padded_layout(win)
    b = win.bin
    bg = np.zeros(bins["weight"].size) if background is None else background
    arrays = {
        "y": win.counts.astype(float), "weight": bins["weight"][b],
        "q": bins["q_wmean"][b], "phi": bins["phi_wmean"][b], "vq": bins["var_q"][b],
        "vp": bins["var_phi"][b], "c": bins["cov_qphi"][b], "bg": bg[b],
        # the bin's area in (q, φ): pixels × mean |Jacobian| (weight / factor per pixel)
        "area": bins["npix"][b] * bins["weight"][b] / bins["factor"][b],
    }  # fmt: skip
    fill = {"y": 0.0, "weight": 0.0, "q": 0.0, "phi": 0.0, "vq": 1.0, "vp": 1.0, "c": 0.0,
            "bg": 1.0, "area": 0.0}  # fmt: skip
    out = {name: lay.dense(v, fill[name]) for name, v in arrays.items()}
    out["mask"] = lay.mask.astype(float)
    return out, lay.pix, lay.peak


def summarise_windows(
    win: Windows,
    bins: dict,
    background,
    s_init,
    *,
    nuisance_prior: tuple[float, float, float],
    n_iter: int = 80,
    bias_correct: bool = True,
    min_observed: float = MIN_OBSERVED,
):
    """Fit every window of ``win`` and return its :class:`PeakSummaries`.

    Parameters
    ----------
    win
        The region's windows (their centres start the fits).
    bins
        Per-bin arrays of the reduced data (``weight``, ``q_wmean`` ...).
    background
        (n_bins,) expected substrate counts per frame, or None.
    s_init
        (pixel, peak, 2) starting standard deviations (σ_q [nm⁻¹], σ_φ [degree]).
    nuisance_prior
        ``(mu, sigma, flat_sigma)``: every window's template scale ~ LogNormal(mu, sigma)
        and flat density [counts per nm⁻¹ degree] ~ HalfNormal(flat_sigma), the exact
        model's priors (both fitted on the log scale, the flat's Jacobian included, as NUTS
        samples them).
    n_iter
        Fisher-scoring iterations (all windows share them; converged ones stop moving).
    bias_correct
        Subtract each estimate's first-order bias (:func:`poisson_mle_bias`).
    min_observed
        Windows with less of their fitted peak on observed bins carry no summary.
    """
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    arr, pix, peak = _padded(win, bins, background)
    half_q, half_p = win.half
    cq, cp = win.centre_q[pix, peak], win.centre_phi[pix, peak]
    s0 = np.asarray(s_init, float)[pix, peak]
    y, w, bg, mask = arr["y"], arr["weight"], arr["bg"], arr["mask"]
    # Starting values: background from the window's lower half of count densities, peak
    # intensity from the excess over it.
    dens = np.where(mask > 0, y / np.maximum(w, 1e-12), np.nan)
    flat0 = np.maximum(np.nanpercentile(dens, 25, axis=1), 1e-3)
    has_bg = (bg * mask).sum(1) > 0
    flat0 = np.where(has_bg, 0.1 * flat0, flat0)
    shape0 = binned_peak_counts(w, arr["q"], arr["phi"], arr["vq"], arr["vp"], arr["c"],
                                cq[:, None], cp[:, None], s0[:, :1], s0[:, 1:], 1.0)  # fmt: skip
    excess = (y - flat0[:, None] * w - np.where(has_bg, 1.0, 0.0)[:, None] * bg) * mask
    i0 = np.maximum(excess.sum(1), 10.0) / np.maximum((shape0 * mask).sum(1), 1e-12)
    log_bt0 = np.full(cq.size, float(nuisance_prior[0]))
    p0 = np.column_stack([cq, cp, np.log(s0[:, 0]), np.log(s0[:, 1]), np.log(i0), log_bt0,
                          np.log(flat0)])  # fmt: skip
    s_mu, s_sd, f_sd = (float(v) for v in nuisance_prior)
    lo = np.column_stack([cq - half_q, cp - half_p, np.full(cq.size, np.log(1e-4)),
                          np.full(cq.size, np.log(1e-3)), np.full(cq.size, np.log(1e-3)),
                          np.full((cq.size, 2), -40.0)])  # fmt: skip
    hi = np.column_stack([cq + half_q, cp + half_p, np.full(cq.size, np.log(half_q)),
                          np.full(cq.size, np.log(half_p)), np.full(cq.size, np.log(1e12)),
                          np.full((cq.size, 2), 40.0)])  # fmt: skip

    def mu_fn(p, d):
        peak_counts = binned_peak_counts(
            d["weight"], d["q"], d["phi"], d["vq"], d["vp"], d["c"], p[0], p[1],
            jnp.exp(p[2]), jnp.exp(p[3]), jnp.exp(p[4]),
        )  # fmt: skip
        return jnp.exp(p[5]) * d["bg"] + jnp.exp(p[6]) * d["weight"] + peak_counts + 1e-300

    def log_prior(p):  # log scale ~ N(mu, sd); flat ~ HalfNormal, on log flat with Jacobian
        return -0.5 * ((p[5] - s_mu) / s_sd) ** 2 - 0.5 * (jnp.exp(p[6]) / f_sd) ** 2 + p[6]

    def objective(p, d):
        mu = mu_fn(p, d)
        return jnp.sum(d["mask"] * (d["y"] * jnp.log(mu) - mu)) + log_prior(p)

    def score_fisher(p, d):
        mu = mu_fn(p, d)
        J = jax.jacfwd(mu_fn)(p, d)  # (L, 7)
        r = d["mask"] * (d["y"] / mu - 1.0)
        g = J.T @ r + jax.grad(log_prior)(p)
        F = (J * (d["mask"] / mu)[:, None]).T @ J
        return g, F - jax.hessian(log_prior)(p)

    def fit_one(p, d, lo_, hi_):
        def step(_, state):
            p, lam, ll, _dec = state
            g, F = score_fisher(p, d)
            A = F + lam * jnp.diag(jnp.diag(F)) + 1e-12 * jnp.eye(N_ALL)
            delta = jnp.linalg.solve(A, g)
            new = jnp.clip(p + delta, lo_, hi_)
            ll_new = objective(new, d)
            better = ll_new >= ll
            dec = g @ jnp.linalg.solve(F + 1e-12 * jnp.eye(N_ALL), g)
            return (jnp.where(better, new, p), jnp.where(better, lam / 3, lam * 4),
                    jnp.where(better, ll_new, ll), dec)  # fmt: skip

        init = (p, 1e-3, objective(p, d), jnp.inf)
        p, _, _, _ = jax.lax.fori_loop(0, n_iter, step, init)
        g, F = score_fisher(p, d)
        dec = g @ jnp.linalg.solve(F, g)  # Newton decrement: ~0 at the optimum
        cov_all = jnp.linalg.inv(F)
        bias = jnp.zeros(N_ALL)
        if bias_correct:
            bias = poisson_mle_bias(lambda x: mu_fn(x, d), p, cov_all, d["mask"])
        return p - bias, cov_all[:N_PEAK, :N_PEAK], dec, bias[:N_PEAK]

    p, cov, dec, bias = _over_devices(jax.vmap(fit_one), p0, arr, lo, hi)
    sd = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
    inside = (
        (np.abs(p[:, 0] - cq) < 0.8 * half_q)
        & (np.abs(wrap_deg(p[:, 1] - cp)) < 0.8 * half_p)
        & (p[:, 2] < np.log(0.4 * half_q))
        & (p[:, 3] < np.log(0.4 * half_p))
    )
    # a first-order bias near the standard error: too few counts for the Laplace summary
    asymptotic = np.all(np.abs(bias) < MAX_BIAS_SD * sd, axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        observed = (binned_peak_counts(
            arr["area"], arr["q"], arr["phi"], arr["vq"], arr["vp"], arr["c"], p[:, :1],
            p[:, 1:2], np.exp(p[:, 2:3]), np.exp(p[:, 3:4]), 1.0) * mask).sum(1)  # fmt: skip
    ok = np.isfinite(dec) & (dec < 1e-3) & inside & (sd[:, 4] < MAX_SD_LOG_I0) & asymptotic
    ok &= observed > min_observed
    chol = np.zeros_like(cov)
    for i in range(cov.shape[0]):
        try:
            chol[i] = np.linalg.cholesky(0.5 * (cov[i] + cov[i].T))
        except np.linalg.LinAlgError:
            ok[i] = False
    return PeakSummaries(pix, peak, p[:, :N_PEAK], chol, ok, (y * mask).sum(1), observed)


def _over_devices(fn, *args):
    """``fn`` (vectorised over the leading axis of every array in ``args``) with that axis
    split across the local JAX devices — the CPU cores, once
    :func:`~bayes_sc.inference.sample.enable_parallel_chains` made them devices. Returns
    NumPy arrays."""
    import jax

    n_dev = jax.local_device_count()
    n = len(args[0])
    if n_dev < 2 or n < 2 * n_dev:
        return jax.tree.map(np.asarray, jax.jit(fn)(*args))
    per = -(-n // n_dev)

    def split(a):  # pad with copies of the last row, then one slice per device
        a = np.asarray(a)
        a = np.concatenate([a, np.repeat(a[-1:], per * n_dev - n, axis=0)])
        return a.reshape(n_dev, per, *a.shape[1:])

    out = jax.pmap(fn)(*jax.tree.map(split, args))
    return jax.tree.map(lambda o: np.asarray(o).reshape(n_dev * per, *o.shape[2:])[:n], out)


def xray_summaries(data, preset: dict, saxs: Windows, waxs: Windows, first: dict):
    """SAXS and WAXS summaries of a scan, fits started from the preset's typical SAXS widths
    and the first estimates' Williamson–Hall widths; returns all windows (see ``.ok``)."""
    from ..physics import wh_widths
    from ..physics.peaks import FWHM_PER_SIGMA

    pr, g = preset["priors"], data.graph
    w_saxs = np.exp([pr["saxs_w_q"]["mu"], pr["saxs_w_phi"]["mu"]]) / FWHM_PER_SIGMA
    s_saxs = np.broadcast_to(w_saxs, (*saxs.centre_q.shape, 2))

    def typical(name, default):  # per pixel; the crystal's median (or default) where it failed
        v = first[name][g.rows, g.cols]
        return fill_missing(v, np.nanmedian(v) if np.isfinite(v).any() else default)

    K = float(preset["constants"]["K_scherrer"]["value"])
    wq, wp = wh_widths(
        waxs.centre_q, float(first.get("L_nc", 7.0)), typical("g_q", 1.5)[:, None] / 100.0,
        typical("delta_psi", 15.0)[:, None], K,
    )  # fmt: skip
    s_waxs = np.stack([wq, wp], axis=-1) / FWHM_PER_SIGMA
    nuisance = (pr["background_scale"]["mu"], pr["background_scale"]["sigma"],
                pr["flat_background"]["sigma"])  # fmt: skip
    return (
        summarise_windows(
            saxs, data.bins, data.background, s_saxs, nuisance_prior=nuisance, min_observed=0.0
        ),  # fmt: skip
        summarise_windows(waxs, data.bins, data.background, s_waxs, nuisance_prior=nuisance),
    )


def starting_values(
    saxs: PeakSummaries, waxs: PeakSummaries, n_pix: int, n_saxs: int, n_waxs: int
) -> dict:
    """Starting values of the X-ray model's peak fields from the usable summaries (NaN where a
    pixel has none): ``log_I_saxs`` (pixel, SAXS reflection), ``saxs_w_q`` [nm⁻¹] and
    ``saxs_w_phi`` [degree] FWHMs per pixel, ``I_AL`` per pixel and ``waxs_rel`` (WAXS
    reflection,) summing to 1.

    Only where NUTS starts: prior centres put the SAXS intensities and widths hundreds of
    standard errors from the thousands of windows' estimates, a potential 160× the posterior's,
    and the warm-up's first mass-matrix windows then adapt to that transient.
    """
    from ..physics.peaks import FWHM_PER_SIGMA

    def per(summ, col, key, n_key):
        total = np.zeros((n_pix, n_key))
        count = np.zeros((n_pix, n_key))
        np.add.at(total, (summ.pix, key), summ.theta[:, col])
        np.add.at(count, (summ.pix, key), 1)
        with np.errstate(invalid="ignore"):
            return total / count  # NaN where none

    out = {"log_I_saxs": per(saxs, 4, saxs.peak % n_saxs, n_saxs)}
    for col, name in ((2, "saxs_w_q"), (3, "saxs_w_phi")):
        with np.errstate(invalid="ignore"):
            out[name] = np.exp(np.nanmean(per(saxs, col, np.zeros_like(saxs.pix), 1), 1))
        out[name] = out[name] * FWHM_PER_SIGMA
    # WAXS log I0 = log I_AL(pixel) + log(n·rel(reflection)): two medians-polish passes.
    refl = waxs.peak % n_waxs
    log_i = waxs.theta[:, 4]
    b = np.zeros(n_waxs)
    a = np.full(n_pix, np.nan)
    for _ in range(2):
        for p in np.unique(waxs.pix):
            a[p] = np.median(log_i[waxs.pix == p] - b[refl[waxs.pix == p]])
        for k in np.unique(refl):
            b[k] = np.median(log_i[refl == k] - a[waxs.pix[refl == k]])
        b -= np.log(np.exp(b).mean())  # n·rel averages 1
    out["I_AL"] = np.exp(a)
    out["waxs_rel"] = np.exp(b) / np.exp(b).sum()
    return out
