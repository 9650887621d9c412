"""FLIM baselines: per-pixel least-squares reconvolution (the paper's SymPhoTime fit) and
per-pixel Poisson maximum likelihood (or MAP), on the same merged bins as the model.

Both first fit the crystal's summed decay once (mono-exponential reconvolution, Poisson ML) to
fix what every pixel shares: the IRF shift ``s`` [ps] for a measured IRF, or the modelled IRF's
centre, FWHM and tail. Each pixel then gets its own (τ, A, b) with the IRF fixed, the way FLIM
software fits images pixel by pixel.
"""

from __future__ import annotations

import numpy as np

from ..physics.flim import emg_irf
from ..physics.flim_binned import flim_expected_merged
from .lm import lm_fit

LOG_TAU_RANGE = (np.log(0.02), np.log(100.0))  # [log ns] search box of the fits


def irf_from(data, glob: dict):
    """The IRF on native bins: measured, or the modelled one with the global fit's parameters."""
    if data.irf is not None:
        return data.irf
    return emg_irf(data.n_bins, data.bin_ns, glob["irf_centre_ps"] / 1e3,
                   glob["irf_fwhm_ps"] / 1e3, glob["irf_tail_ps"] / 1e3)  # fmt: skip


def _rise_ns(hist: np.ndarray, bin_ns: float) -> float:
    """Time of the steepest rise of a decay histogram [ns]: a start for the IRF position."""
    smooth = np.convolve(np.r_[hist[-2:], hist, hist[:2]], np.ones(5) / 5, mode="valid")
    return float((np.argmax(np.diff(np.r_[smooth[-1], smooth])) + 0.5) * bin_ns)


def fit_global(data) -> dict:
    """Mono-exponential Poisson ML fit of the crystal's summed decay (see module docstring).

    Returns
    -------
    dict
        ``tau_ns``, ``background`` [counts per native bin per pixel] and either ``irf_shift_ps``
        (measured IRF) or ``irf_centre_ps, irf_fwhm_ps, irf_tail_ps`` (modelled IRF).
    """
    import jax
    import jax.numpy as jnp

    y = data.counts.sum(axis=0).astype(float)
    n_pix = data.counts.shape[0]
    total = y.sum()
    bg0 = max(
        np.sort(y)[: max(1, y.size // 10)].mean() / data.widths.mean(), 1e-3 * total / data.n_bins
    )
    measured = data.irf is not None

    def mu_fn(p, _x):
        tau = jnp.exp(p[:1])
        if measured:
            irf, shift = data.irf, p[3]
        else:
            irf = emg_irf(data.n_bins, data.bin_ns, p[3] / 1e3, jnp.exp(p[4]) / 1e3,
                          jnp.exp(p[5]) / 1e3)  # fmt: skip
            shift = 0.0
        return flim_expected_merged(irf, data.bin_ns, data.period_ns, tau, jnp.exp(p[1:2]),
                                    shift, jnp.exp(p[2]), data.merge)[0]  # fmt: skip

    # Starting grid: τ, and the IRF position (a measured IRF's shift over ±1.5 ns; a modelled
    # IRF at the histogram's steepest rise).
    starts = []
    if not measured:
        c0 = 1e3 * _rise_ns(y / data.widths, data.bin_ns * data.merge)
    for tau0 in (0.3, 1.0, 2.0, 4.0):
        if measured:
            starts += [
                [np.log(tau0), np.log(total), np.log(bg0), s] for s in np.arange(-1500, 1501, 100)
            ]
        else:
            starts += [[np.log(tau0), np.log(total), np.log(bg0), c0, np.log(150.0), np.log(50.0)]]
    p0 = np.array(starts, float)
    k = p0.shape[1]
    lo = np.array([LOG_TAU_RANGE[0], 0.0, np.log(1e-9), -1e5] + [np.log(5.0), np.log(0.1)][: k - 4])
    hi = np.array(
        [LOG_TAU_RANGE[1], np.log(1e15), np.log(1e9), 1e5] + [np.log(5e3), np.log(5e3)][: k - 4]
    )
    n = p0.shape[0]
    p, _cov, _dec = lm_fit(mu_fn, p0, np.tile(y, (n, 1)), None, np.tile(lo, (n, 1)),
                           np.tile(hi, (n, 1)), n_iter=80)  # fmt: skip
    mu = np.maximum(np.asarray(jax.vmap(mu_fn, (0, None))(p, None)), 1e-300)
    dev = np.sum(mu - y * np.log(mu), axis=1)  # Poisson deviance of each start's optimum
    best = p[int(np.nanargmin(dev))]
    out = {"tau_ns": float(np.exp(best[0])), "background": float(np.exp(best[2])) / n_pix}
    if measured:
        out["irf_shift_ps"] = float(best[3])
    else:
        # the modelled IRF is periodic: report its centre within the period [0, T)
        centre_ps = float(best[3]) % (1e3 * data.period_ns)
        out.update(irf_centre_ps=centre_ps, irf_fwhm_ps=float(np.exp(best[4])),
                   irf_tail_ps=float(np.exp(best[5])))  # fmt: skip
    return out


def fit_pixels(data, glob: dict | None = None, *, loss: str = "poisson", prior=None) -> dict:
    """Per-pixel (τ, A, b) with the IRF fixed by :func:`fit_global`.

    Parameters
    ----------
    data
        :class:`~bayes_sc.modeling.flim_data.FlimData`.
    glob
        Result of :func:`fit_global` (computed when None).
    loss
        ``"poisson"`` (maximum likelihood) or ``"ls"`` (Neyman-weighted least squares, the
        paper's reconvolution fit).
    prior
        Optional ((3,) mean, (3,) sd) of a Gaussian prior on (log τ, log A, log b): MAP.

    Returns
    -------
    dict
        Per crystal pixel: ``tau`` [ns], ``tau_sd`` [ns] (from the curvature), ``amplitude``
        [photons], ``background`` [counts per native bin], ``ok`` (converged, finite); and
        ``global``.
    """
    import jax
    import jax.numpy as jnp

    glob = fit_global(data) if glob is None else glob
    irf = irf_from(data, glob)
    shift = glob.get("irf_shift_ps", 0.0)
    y = data.counts.astype(float)
    n = y.shape[0]
    widths = data.widths

    def shape(log_tau):  # decay shape per decay photon, merged bins
        return flim_expected_merged(irf, data.bin_ns, data.period_ns, jnp.exp(log_tau), 1.0,
                                    shift, 0.0, data.merge)[0]  # fmt: skip

    def mu_fn(p, _x):
        return jnp.exp(p[1]) * shape(p[:1]) + jnp.exp(p[2]) * widths

    def mu_jac(p, _x):  # A and b enter linearly: one forward-mode pass for τ only
        s, ds = jax.jvp(shape, (p[:1],), (jnp.ones(1),))
        a, b = jnp.exp(p[1]), jnp.exp(p[2])
        J = jnp.stack([a * ds, a * s, b * jnp.asarray(widths)], axis=1)
        return a * s + b * widths, J

    photons = np.maximum(y.sum(1), 1.0)
    bg0 = np.full(n, max(glob["background"], 1e-6))
    p0 = np.column_stack([np.full(n, np.log(glob["tau_ns"])), np.log(photons), np.log(bg0)])
    lo = np.tile([LOG_TAU_RANGE[0], np.log(1e-3), np.log(1e-9)], (n, 1))
    hi = np.tile([LOG_TAU_RANGE[1], np.log(1e12), np.log(1e6)], (n, 1))
    kw = {}
    if prior is not None:
        kw = {"prior_mean": np.tile(np.asarray(prior[0], float), (n, 1)), "prior_sd": prior[1]}
    p, cov, dec = lm_fit(mu_fn, p0, y, None, lo, hi, loss=loss, mu_jac_fn=mu_jac, **kw)
    tau = np.exp(p[:, 0])
    sd_log = np.sqrt(np.clip(cov[:, 0, 0], 0.0, None))
    ok = np.isfinite(p).all(1) & np.isfinite(dec) & (dec < 1e-2)
    ok &= (p[:, 0] > LOG_TAU_RANGE[0] + 1e-6) & (p[:, 0] < LOG_TAU_RANGE[1] - 1e-6)
    return {"tau": tau, "tau_sd": tau * sd_log, "amplitude": np.exp(p[:, 1]),
            "background": np.exp(p[:, 2]), "ok": ok, "global": glob}  # fmt: skip


def baseline_flim(data, *, loss: str = "ls") -> dict:
    """The paper's maps: per-pixel reconvolution fits (``loss="ls"``) or per-pixel Poisson ML,
    with τ [ns] on the (binned) image grid (NaN outside the crystal or where a fit failed) and
    the per-pixel fits (:func:`fit_pixels`) under their own names, τ per pixel as ``tau_pixels``."""
    res = fit_pixels(data, loss=loss)
    tau = np.where(res["ok"], res["tau"], np.nan)
    return {**res, "tau_pixels": res["tau"], "tau": data.graph.to_grid(tau)}
