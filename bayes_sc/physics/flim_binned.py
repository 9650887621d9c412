"""Exact FLIM expected counts in merged time bins, in O(N) per pixel (NumPy, JAX, PyTensor).

:func:`bayes_sc.physics.flim.flim_expected_counts` is the reference (SPEC §5): the periodic
decay kernel ``K_f`` (exact for a piecewise-constant IRF delayed by ``s = (m + f) Δ``) applied
to the IRF rolled by ``m`` whole bins, an ``N × N`` product per pixel. With N = 3125 bins
(50 ns period, 16 ps bins) that is far too slow for a posterior over thousands of pixels.

Here the same numbers are computed in O(N) per pixel and summed into merged bins of ``M``
native bins (sums of Poisson counts are Poisson, so merging the data loses nothing but time
resolution, and the IRF keeps its native resolution). The kernel is geometric beyond lag 1:
``K[n] = a qⁿ`` for n ≥ 2 with ``q = exp(-Δ/τ)``, and lags 0 and 1 carry corrections
``δ0 = K[0] - a``, ``δ1 = K[1] - a q``. With ``g`` the rolled, normalised IRF,

    y[j] = a Z[j] + δ0 g[j] + δ1 g[j-1],      Z[j] = Σ_{n<N} qⁿ g[(j - n) mod N]
    Z[j] = (1 - q^N) P[j] + q^{j+1} P[N-1],    P[j] = Σ_{k≤j} q^{j-k} g[k]   (causal filter)

and the sums of ``P`` over a merged bin follow from its value at the end of the previous bin
and two within-bin moments of ``g`` (one matrix product for all pixels). The causal filter over
merged bins is a scan of ``P[J] = q^M P[J-1] + w[J]`` (stable for any τ > 0).
"""

from __future__ import annotations

import numpy as np

from ._xp import array_module, as_array


def merge_plan(n_bins: int, merge: int) -> tuple[int, int]:
    """(full merged bins, length of the short last bin or 0) for ``n_bins`` merged by ``merge``."""
    if merge < 1 or merge > n_bins:
        raise ValueError(f"merge factor {merge} must be in [1, {n_bins}]")
    return n_bins // merge, n_bins % merge


def merge_bins(counts, merge: int):
    """Sum the last axis of ``counts`` in groups of ``merge`` bins (a short last group stays)."""
    counts = np.asarray(counts)
    n = counts.shape[-1]
    full, rest = merge_plan(n, merge)
    out = counts[..., : full * merge].reshape(counts.shape[:-1] + (full, merge)).sum(-1)
    if rest:
        out = np.concatenate([out, counts[..., full * merge :].sum(-1, keepdims=True)], axis=-1)
    return out


def merged_widths(n_bins: int, merge: int) -> np.ndarray:
    """Native bins in each merged bin."""
    full, rest = merge_plan(n_bins, merge)
    return np.array([merge] * full + ([rest] if rest else []), dtype=float)


def _kernel_terms(bin_ns, tau, period_ns, frac, xp):
    """Geometric coefficient ``a`` and lag-0/1 corrections ``δ0, δ1`` of ``K_f`` (shape of τ)."""
    x = bin_ns / tau
    q = xp.exp(-x)
    one_m_q = -xp.expm1(-x)
    c = one_m_q**2 / x
    one_m_r = -xp.expm1(-period_ns / tau)
    a = c * xp.exp((1.0 + frac) * x) / one_m_r  # K[n] = a qⁿ for n >= 2
    r = 1.0 - one_m_r

    def ramp(z):  # ∫_0^z P(lag < y) dy, z in units of Δ; see flim._ramp_integral
        zp = xp.maximum(z, 0.0)
        return zp + xp.expm1(-zp * x) / x

    near = []
    for n in (0, 1):
        d = n - frac
        second = ramp(d + 1.0) - 2.0 * ramp(d) + ramp(d - 1.0)
        near.append(second + c * xp.exp(-(d - 1.0) * x) * r / one_m_r)
    return a, near[0] - a, near[1] - a * q, q, x


def _causal_filter(w, log_qm, n_b: int, xp):
    """``P[J] = Σ_{J' ≤ J} (q^M)^{J-J'} w[J']`` along the last axis of ``w`` (P, n_b).

    ``log_qm`` = log q^M ≤ 0, shape (P,). The recurrence ``P[J] = q^M P[J-1] + w[J]`` run as a
    scan over the merged bins, vectorised over pixels: stable for every τ > 0 (q^M ≤ 1), and
    under JAX (``lax.scan``, also what PyTensor's ``scan`` becomes) value and gradient cost
    0.65 ms at 1364 pixels × 65 bins against 2.2 ms for the blocked cumulative-sum form it
    replaced.
    """
    qm = xp.exp(log_qm)
    if xp is np:
        out = np.empty_like(w)
        p = np.zeros_like(w[:, 0])
        for j in range(n_b):
            p = qm * p + w[:, j]
            out[:, j] = p
        return out
    if xp.__name__.startswith("pytensor"):
        import pytensor

        out = pytensor.scan(lambda wj, p, qm: qm * p + wj, sequences=[w.T],
                            outputs_info=[xp.zeros_like(w[:, 0])], non_sequences=[qm],
                            return_updates=False)  # fmt: skip
        return xp.specify_shape(out.T, (None, n_b))  # static length: later slices broadcast
    import jax

    def step(p, wj):
        p = qm * p + wj
        return p, p

    return jax.lax.scan(step, xp.zeros_like(w[:, 0]), w.T)[1].T


def flim_expected_merged(irf, bin_ns, period_ns, tau_ns, amplitude, shift_ps, background, merge):
    """Expected counts in merged time bins [counts], shape ``tau_ns.shape + (n_merged,)``.

    Equals ``merge_bins(flim_expected_counts(...), merge)`` to rounding (tested).

    Parameters
    ----------
    irf
        IRF on the native bins (N,) [any scale; normalised here]; may be symbolic.
    bin_ns, period_ns
        Native bin width Δ and laser period T [ns].
    tau_ns
        Lifetimes τ [ns], shape (P,) (or scalar).
    amplitude
        Decay photons A [counts], broadcast with ``tau_ns``.
    shift_ps
        IRF delay s [ps] (scalar, may be symbolic).
    background
        Background b [counts per native bin], broadcast with ``tau_ns``.
    merge
        Native bins per merged bin M (a short last merged bin takes the rest).
    """
    xp = array_module(irf, tau_ns, amplitude, shift_ps, background)
    irf = as_array(irf, xp)
    n_bins = irf.type.shape[0] if hasattr(irf, "type") else np.shape(irf)[0]
    if n_bins is None:
        raise ValueError("the IRF needs a static length")
    n_bins = int(n_bins)
    tau_shape = np.shape(tau_ns) if xp is np else None
    tau = as_array(tau_ns, xp).reshape((-1,))  # pixels along one axis inside
    full, rest = merge_plan(n_bins, merge)
    g = irf / xp.sum(irf)
    shift_bins = shift_ps / (1000.0 * bin_ns)
    m = xp.floor(shift_bins)
    frac = shift_bins - m
    idx = (np.arange(n_bins) - m) % n_bins
    idx = idx.astype(int) if xp is np else idx.astype("int64")
    g = g[idx]  # the IRF delayed by m whole bins
    g_prev = xp.concatenate([g[-1:], g[:-1]])  # g[j - 1]

    a, d0, d1, q, x = _kernel_terms(bin_ns, tau, period_ns, frac, xp)
    x_ = x[..., None]
    one_m_q = -xp.expm1(-x)[..., None]

    def moments(block, length):  # Σ_l g[s+l] (1 - q^{len-l})/(1 - q) and Σ_l g[s+l] q^{len-1-l}
        # One matrix product, the pixels' dominant cost: the first moment follows from the
        # second, (1 - q^{len-l}) = 1 - q · q^{len-1-l}, so H = (Σ_l g[s+l] - q W) / (1 - q)
        # (float64: the cancellation as q → 1 costs a relative ~1e-16 τ/Δ, 1e-11 at τ/Δ = 1e5).
        k = float(length) - np.arange(length)  # len - l
        w = xp.dot(xp.exp(-x_ * (k - 1.0)), block.T)  # (..., n blocks)
        return (block.sum(axis=1) - xp.exp(-x_) * w) / one_m_q, w

    gf = g[: full * merge].reshape((full, merge))
    H, W = moments(gf, merge)  # (P, full)
    sums = [gf.sum(axis=1)]
    sums_prev = [g_prev[: full * merge].reshape((full, merge)).sum(axis=1)]
    pend = _causal_filter(W, -x * merge, full, xp)  # P at the end of each full merged bin
    qpow = xp.exp(-x_ * (merge * np.arange(full)))  # (q^M)^J
    geo_full = -xp.expm1(-x_ * merge) / one_m_q  # (1 - q^M) / (1 - q), (P, 1)
    q_ = xp.exp(-x_)
    S = xp.concatenate([xp.zeros_like(pend[:, :1]), pend[:, :-1]], axis=-1) * q_ * geo_full + H
    E = q_ * geo_full * qpow  # Σ_{j in J} q^{j+1} = q^{J M + 1} (1 - q^M) / (1 - q)
    p_last = pend[:, -1:]  # P[N-1]: the end of the period
    if rest:
        gt = g[full * merge :].reshape((1, rest))
        Ht, Wt = moments(gt, rest)
        geo_rest = -xp.expm1(-x_ * rest) / one_m_q
        S = xp.concatenate([S, p_last * q_ * geo_rest + Ht], axis=-1)
        E = xp.concatenate([E, q_ * geo_rest * xp.exp(-x_ * (merge * full))], axis=-1)
        p_last = p_last * xp.exp(-x_ * rest) + Wt
        sums.append(gt.sum(axis=1))
        sums_prev.append(g_prev[full * merge :].sum(keepdims=True))
    G = xp.concatenate(sums) if len(sums) > 1 else sums[0]
    Gp = xp.concatenate(sums_prev) if len(sums_prev) > 1 else sums_prev[0]
    one_m_qn = -xp.expm1(-x * n_bins)[..., None]
    Z = one_m_qn * S + p_last * E
    y = a[..., None] * Z + d0[..., None] * G + d1[..., None] * Gp
    if tau_shape is not None:  # NumPy: the shape of τ, as the reference kernel returns
        y = y.reshape(tau_shape + (y.shape[-1],))
    amp = as_array(amplitude, xp)[..., None]
    bg = as_array(background, xp)[..., None]
    return amp * y + bg * merged_widths(n_bins, merge)
