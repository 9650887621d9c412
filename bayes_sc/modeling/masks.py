"""Deciding which pixels belong to the crystal, from the counts alone (shared by modalities)."""

from __future__ import annotations

import numpy as np


def otsu_split(values) -> tuple[float, float]:
    """Otsu's threshold of ``values`` and its separation in pooled standard deviations.

    Returns
    -------
    cut, separation
        The cut maximising the between-group variance, and (mean above - mean below) divided by
        the pooled within-group sd: a clear two-population split scores well above 5.
    """
    order = np.sort(np.asarray(values, float).ravel())
    if order.size < 2:
        return float(order[0]) if order.size else 0.0, 0.0
    k = np.arange(1, order.size)
    csum = np.cumsum(order)
    lo_mean = csum[:-1] / k
    hi_mean = (csum[-1] - csum[:-1]) / (order.size - k)
    score = k * (order.size - k) * (hi_mean - lo_mean) ** 2
    best = int(np.argmax(score))
    cut = 0.5 * (order[best] + order[best + 1])
    lo, hi = order[order <= cut], order[order > cut]
    if lo.size == 0 or hi.size == 0:
        return float(cut), 0.0
    spread = np.sqrt(0.5 * (lo.var() + hi.var())) + 1e-9
    return float(cut), float((hi.mean() - lo.mean()) / spread)
