"""FLIM forward model (SPEC §5): periodic mono-exponential decay convolved with a shifted IRF.

Expected counts in time bin j of a histogram of N bins of width Δ over one laser period T:

    μ_j = A · Σ_k g_k · K_f[(j - k - m) mod N] + b

``g^s`` is the measured IRF (normalised to unit sum) delayed by s = (m + f) Δ, treated as
piecewise constant within its bins. The whole-bin part m rolls the IRF; the sub-bin part f
enters the kernel: ``K_f[n]`` is the exact probability that a photon excited uniformly within
a bin-wide box starting f bins late is detected n bins later (mod N), for the periodic density
(1/τ) exp(-t/τ) / (1 - exp(-T/τ)); so ``A`` is the number of decay photons and ``b`` the
background per bin. Works with NumPy, JAX and PyTensor inputs.
"""

from __future__ import annotations

import numpy as np

from ._xp import array_module, as_array, expand_last


def _ramp_integral(z, tau, xp):
    """∫_0^z P(lag < y) dy for an exponential lag: max(z,0) - τ(1 - exp(-max(z,0)/τ))."""
    zp = xp.maximum(z, 0.0)
    return zp - tau * (1.0 - xp.exp(-zp / tau))


def periodic_decay_kernel(n_bins: int, bin_ns: float, tau_ns, period_ns: float, frac_shift=0.0):
    """Bin-integrated periodic decay response ``K[..., n]`` (sums to 1 over n).

    ``K[n]`` is the probability that a photon excited uniformly within the box
    ``[(k + f) Δ, (k + 1 + f) Δ]`` is detected in bin ``k + n`` (mod N), f = ``frac_shift``.

    Parameters
    ----------
    n_bins
        Histogram bins N covering one period.
    bin_ns
        Bin width Δ [ns].
    tau_ns
        Lifetime τ [ns] (any shape; the lag axis is appended last).
    period_ns
        Laser period T [ns].
    frac_shift
        Sub-bin delay f of the excitation boxes, in [0, 1) [bins] (scalar, may be symbolic).
    """
    xp = array_module(tau_ns, frac_shift)
    tau = expand_last(tau_ns, xp)
    n = np.arange(n_bins, dtype=float)
    d = (n - frac_shift) * bin_ns  # start-to-start offset of detection bin and excitation box
    e1 = xp.exp(-bin_ns / tau)
    r = xp.exp(-period_ns / tau)  # decay over one period
    c = tau / bin_ns * (1.0 - e1) ** 2
    # Lags n >= 2 never overlap the excitation box: closed form, summed over all periods.
    far = c * xp.exp(-(d - bin_ns) / tau) / (1.0 - r)
    # Lags 0, 1 overlap it: second difference of the ramp integral, plus later periods.
    near = (
        _ramp_integral(d + bin_ns, tau, xp)
        - 2.0 * _ramp_integral(d, tau, xp)
        + _ramp_integral(d - bin_ns, tau, xp)
    ) / bin_ns + c * xp.exp(-(d - bin_ns) / tau) * r / (1.0 - r)
    is_near = (n < 2).astype(float)
    return is_near * near + (1.0 - is_near) * far


def irf_circulant(irf, shift_bins):
    """Matrix ``G[n, j] = g[(j - n - m) mod N]``, m = floor(shift): the IRF rolled by whole bins.

    ``periodic_decay_kernel(..., frac_shift=shift - m) @ G`` is then the exact expected
    histogram for the piecewise-constant IRF ``g`` (normalised to unit sum) delayed by
    ``shift_bins``, which may be fractional and symbolic.
    """
    xp = array_module(irf, shift_bins)
    g = as_array(np.asarray(irf, dtype=float) / np.sum(irf), xp)
    n_bins = np.shape(irf)[0]
    m = xp.floor(shift_bins)
    lag = np.arange(n_bins)[None, :] - np.arange(n_bins)[:, None]  # j - n
    idx = (lag - m) % n_bins
    idx = idx.astype(int) if xp is np else idx.astype("int64")
    return g[idx]


def flim_expected_counts(irf, bin_ns, period_ns, tau_ns, amplitude, shift_ps, background):
    """Expected counts per time bin [counts], shape ``tau_ns.shape + (N,)``.

    Parameters
    ----------
    irf
        Measured IRF histogram (N,) on the same bins [counts or any scale].
    bin_ns, period_ns
        Bin width Δ and laser period T [ns].
    tau_ns
        Lifetime(s) [ns].
    amplitude
        Decay photons A [counts], broadcast with ``tau_ns``.
    shift_ps
        IRF delay s [ps] (scalar).
    background
        Background b [counts per bin], broadcast with ``tau_ns``.
    """
    xp = array_module(tau_ns, amplitude, shift_ps, background)
    n_bins = irf.shape[0]
    shift_bins = shift_ps / (1000.0 * bin_ns)
    frac = shift_bins - xp.floor(shift_bins)
    kernel = periodic_decay_kernel(n_bins, bin_ns, tau_ns, period_ns, frac_shift=frac)
    shape = xp.dot(kernel, irf_circulant(irf, shift_bins))
    return expand_last(amplitude, xp) * shape + expand_last(background, xp)


def gaussian_irf(n_bins: int, bin_ns: float, center_ns: float, fwhm_ns: float):
    """Bin-integrated periodic Gaussian IRF (unit sum): the parametric IRF when none is measured."""
    from scipy.special import erf

    sigma = fwhm_ns / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    period = n_bins * bin_ns
    edges = np.arange(n_bins + 1) * bin_ns
    out = np.zeros(n_bins)
    for wrap in (-1, 0, 1):  # periodic images of the pulse
        z = (edges - center_ns - wrap * period) / (np.sqrt(2.0) * sigma)
        out += 0.5 * np.diff(erf(z))
    return out / out.sum()


def emg_irf(n_bins: int, bin_ns: float, centre_ns, fwhm_ns, tail_ns):
    """Bin-integrated periodic exponentially modified Gaussian IRF (unit sum) [NumPy/JAX/PyTensor].

    The parametric IRF when none is measured: a Gaussian pulse (centre, FWHM) followed by an
    exponential tail of time constant ``tail_ns`` (detector diffusion tail). The CDF is
    ``Φ(z) - ½ exp(-z²/2) erfcx((k - z)/√2)``, ``z = (t - centre)/σ``, ``k = σ/tail``; where
    ``erfcx``'s argument is very negative the equivalent ``exp(k²/2 - k z) Φ(z - k)`` is used,
    each branch on clipped arguments, so values and gradients stay finite everywhere.
    """
    xp = array_module(centre_ns, fwhm_ns, tail_ns)
    sigma = fwhm_ns / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    k = sigma / tail_ns
    period = n_bins * bin_ns
    edges = np.arange(n_bins + 1) * bin_ns
    if xp is np:
        from scipy.special import erf, erfcx
    elif xp.__name__.startswith("jax"):
        from jax.scipy.special import erf, erfcx
    else:
        erf, erfcx = xp.erf, xp.erfcx

    def cdf(t):
        z = (t - centre_ns) / sigma
        u = (k - z) / np.sqrt(2.0)
        tail1 = 0.5 * xp.exp(-0.5 * z**2) * erfcx(xp.maximum(u, -5.0))
        z2 = xp.maximum(z, k + 5.0 * np.sqrt(2.0))  # the branch used where u < -5
        w = z2 - k
        tail2 = xp.exp(0.5 * k**2 - k * z2) * 0.5 * (1.0 + erf(w / np.sqrt(2.0)))
        gauss = 0.5 * (1.0 + erf(z / np.sqrt(2.0)))
        return gauss - xp.where(u >= -5.0, tail1, tail2)

    total = 0.0
    for wrap in (-1, 0, 1):  # periodic images of the pulse and its tail
        c = cdf(edges - wrap * period)
        total = total + (c[1:] - c[:-1])
    return total / xp.sum(total)
