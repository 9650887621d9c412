"""Which bins of each pixel enter the X-ray likelihood: windows around its peaks.

A pixel's SAXS and WAXS peaks can only sit near where its own data put them, so the exact
Poisson likelihood uses, per pixel, the bins within ``half`` (Δq, Δφ) of each peak predicted
from a first estimate (the baseline's per-pixel lattice and ψ; the scan's median where the
baseline failed). Windows are many peak widths wide, so the posterior never reaches their
edges; bins outside every window carry only background and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics import saxs_reflections, waxs_reflections
from ..physics.peaks import wrap_deg
from .xray_data import XrayData

SAXS_HALF = (0.35, 15.0)  # nm⁻¹, degree
WAXS_HALF = (1.6, 32.0)


@dataclass
class Windows:
    """Flattened (pixel, bin) pairs of one region: ``pix`` indexes crystal pixels, ``bin`` the
    reduced bins, ``peak`` the pixel's peak whose window holds the bin (the nearest one, in
    window half-widths, where windows overlap), ``counts`` the observed counts there. Each
    element's expectation sums only its own peak: the others lie ≥ 5 σ away. ``centre_q``,
    ``centre_phi`` (pixel, peak) are the first-estimate peak centres the windows sit on
    [nm⁻¹], [degree], ``half`` the window half-widths (Δq [nm⁻¹], Δφ [degree])."""

    pix: np.ndarray
    bin: np.ndarray
    peak: np.ndarray
    counts: np.ndarray
    centre_q: np.ndarray
    centre_phi: np.ndarray
    half: tuple[float, float]

    @property
    def size(self) -> int:
        return int(self.pix.size)


@dataclass
class PaddedLayout:
    """A dense (W, L) layout of a :class:`Windows`' elements: one row per non-empty
    (pixel, peak) window, padded to the largest window's L elements. ``row``, ``slot``: each
    element's cell (slots in the elements' order within their window); ``pix``, ``peak``:
    each row's pixel and peak. Dense rows let a model broadcast each window's peak over its
    bins instead of gathering it per element (whose gradient, a scatter-add of ~10⁵ terms onto
    a few hundred peaks, serialises on a GPU).

    Windows differ in size (a window cut by a detector gap holds fewer bins), so the rows come
    in ``blocks``: consecutive row ranges ``(r0, r1, L_b)``, each padded only to its own longest
    window ``L_b`` (:meth:`block_dense`); rows are ordered by block, then by (pixel, peak).
    Either way the cells, read row by row, hold the elements in (row, slot) order."""

    row: np.ndarray
    slot: np.ndarray
    pix: np.ndarray
    peak: np.ndarray
    L: int
    blocks: tuple[tuple[int, int, int], ...] = ()

    def dense(self, values, fill) -> np.ndarray:
        """(W, L) array of the elements' ``values``, ``fill`` in the padding."""
        a = np.full((self.pix.size, self.L), fill, dtype=np.result_type(values, fill))
        a[self.row, self.slot] = values
        return a

    @property
    def mask(self) -> np.ndarray:
        """(W, L) booleans: True where a cell holds an element."""
        return self.dense(True, False)

    def block_dense(self, values, fill) -> list[np.ndarray]:
        """``values`` as one (r1 - r0, L_b) array per block (see :meth:`dense`)."""
        full = self.dense(values, fill)
        return [full[r0:r1, :width] for r0, r1, width in self.blocks]


def _blocks(length: np.ndarray, max_blocks: int) -> np.ndarray:
    """Block of each window (0 = shortest) for the split of the windows, by ``length``, into
    at most ``max_blocks`` length ranges that pads the fewest cells (dynamic programming over
    the distinct lengths)."""
    values, count = np.unique(length, return_counts=True)
    m = values.size
    before = np.concatenate([[0], np.cumsum(count)])
    i, j = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    # cost[i, j]: the windows of the i-th to j-th distinct lengths padded to the j-th
    cost = np.where(i <= j, (before[j + 1] - before[i]) * values[j], np.inf)
    best, steps = cost[0], []  # best[j]: fewest cells for lengths 0..j, in the blocks so far
    for _ in range(1, max_blocks if m > 1 else 1):
        total = best[:-1, None] + cost[1:]  # [i, j]: a new last block from length i + 1 to j
        first = np.argmin(total, axis=0) + 1
        new = total[first - 1, np.arange(m)]
        steps.append((new < best, first))
        best = np.minimum(best, new)
    starts, j = [0], m - 1
    for split, first in reversed(steps):
        if split[j]:
            starts.append(int(first[j]))
            j = first[j] - 1
    of_value = np.searchsorted(np.sort(starts), np.arange(m), side="right") - 1
    return of_value[np.searchsorted(values, length)]


def padded_layout(win: Windows, max_blocks: int = 3) -> PaddedLayout:
    """The dense (window, slot) layout of ``win``'s elements (see :class:`PaddedLayout`), its
    rows in at most ``max_blocks`` blocks of similar window sizes."""
    n_peak = win.centre_q.shape[1]
    keys, row = np.unique(win.pix * n_peak + win.peak, return_inverse=True)
    length = np.bincount(row, minlength=keys.size)
    if keys.size:
        block = _blocks(length, max_blocks)
        order = np.lexsort((keys, block))  # rows by block, then by (pixel, peak)
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        keys, length, block, row = keys[order], length[order], block[order], rank[row]
        ends = np.flatnonzero(np.diff(np.append(block, block[-1] + 1))) + 1
        starts = np.concatenate([[0], ends[:-1]])
        blocks = tuple(
            (int(a), int(b), int(length[a:b].max())) for a, b in zip(starts, ends, strict=True)
        )
    else:
        blocks = ()
    by_row = np.argsort(row, kind="stable")
    slot = np.empty(row.size, dtype=np.int64)
    slot[by_row] = np.arange(row.size) - np.repeat(np.cumsum(length) - length, length)
    return PaddedLayout(row, slot, keys // n_peak, keys % n_peak, int(length.max(initial=0)),
                        blocks)  # fmt: skip


def fill_missing(values, fallback):
    """``values`` [any unit] with non-finite entries (failed first estimates) → ``fallback``."""
    v = np.asarray(values, float).copy()
    v[~np.isfinite(v)] = fallback
    return v


def _collect(data: XrayData, region: int, q0, phi0, half) -> Windows:
    bins = data.bins
    in_region = np.flatnonzero(bins["region"] == region)
    bq, bp = bins["q_nm_inv"][in_region], bins["phi_deg"][in_region]
    pix, sel, peak = [], [], []
    for i in range(q0.shape[0]):
        # distance of every bin to every peak, in window half-widths (max norm)
        d = np.maximum(
            np.abs(bq[:, None] - q0[i][None, :]) / half[0],
            np.abs(wrap_deg(bp[:, None] - phi0[i][None, :])) / half[1],
        )
        nearest = np.argmin(d, axis=1)
        keep = d[np.arange(d.shape[0]), nearest] < 1.0
        pix.append(np.full(keep.sum(), i))
        sel.append(in_region[keep])
        peak.append(nearest[keep])
    pix, sel, peak = np.concatenate(pix), np.concatenate(sel), np.concatenate(peak)
    counts = data.counts[data.frames[pix], sel].astype(np.int64)
    return Windows(pix, sel, peak, counts, np.asarray(q0, float), np.asarray(phi0, float), half)


def xray_windows(data: XrayData, first: dict, preset: dict) -> tuple[Windows, Windows]:
    """SAXS and WAXS windows of every crystal pixel from first estimates ``first`` (maps)."""
    g = data.graph
    take = {k: first[k][g.rows, g.cols] for k in ("a1", "a2", "gamma", "phi", "psi")}
    a1 = fill_missing(take["a1"], np.nanmedian(take["a1"]))
    a2 = fill_missing(take["a2"], np.nanmedian(take["a2"]))
    gam = fill_missing(take["gamma"], np.nanmedian(take["gamma"]))
    phi = fill_missing(take["phi"], np.nanmedian(take["phi"]))
    psi = fill_missing(take["psi"], np.nanmedian(take["psi"]))
    hk = np.asarray(preset["xray"]["saxs_reflections"], float)
    q, p = saxs_reflections(a1, a2, gam, phi, np.concatenate([hk, -hk]))
    saxs = _collect(data, 0, q, p, SAXS_HALF)
    hk = np.asarray(preset["xray"]["waxs_reflections"], float)
    q, p = waxs_reflections(np.full(g.n, first["a_AL"]), psi, np.concatenate([hk, -hk]))
    waxs = _collect(data, 1, q, p, WAXS_HALF)
    return saxs, waxs


def merge_window_bins(
    win: Windows, bins: dict, background, factor
) -> tuple[Windows, dict, np.ndarray]:
    """Each window's bins merged ``factor = (n_q, n_phi)`` cells at a time, on the region's
    (q, φ) grid: counts summed (a sum of Poisson counts is Poisson, so a likelihood on the
    merged bins is still exact) and each merged bin described by the weight moments of the
    pixels it holds (summed weight, weighted centroid, spread about it, substrate template
    counts), as :func:`~bayes_sc.physics.binned_peak_counts` needs. A merged bin holds only its
    own window's bins. Returns the merged windows (``bin`` indexes the returned arrays),
    their per-bin arrays ``weight, q_wmean, phi_wmean, var_q, var_phi, cov_qphi, background``
    and each element's merged bin.
    """
    from ..reduce.bins import bin_cells

    mq, mp = (int(f) for f in factor)
    region = int(bins["region"][win.bin[0]])
    sel, iq, ip, _ = bin_cells(bins, region)
    cell = np.full(bins["weight"].size, -1, np.int64)
    cell[sel] = (iq // mq) * (360 * mp) + ip // mp  # ≤ 360 φ cells per q cell
    n_peak = win.centre_q.shape[1]
    key = (win.pix * n_peak + win.peak) * (cell.max() + 1) + cell[win.bin]
    keys, inv = np.unique(key, return_inverse=True)
    n = keys.size

    def total(values):
        return np.bincount(inv, weights=values, minlength=n)

    b = win.bin
    w = bins["weight"][b]
    wsum = np.maximum(total(w), 1e-300)
    q, p = bins["q_wmean"][b], bins["phi_wmean"][b]  # a merged bin never crosses φ = 0
    qm, pm = total(w * q) / wsum, total(w * p) / wsum
    dq, dp = q - qm[inv], p - pm[inv]
    merged = {
        "weight": total(w), "q_wmean": qm, "phi_wmean": pm,
        "var_q": total(w * (bins["var_q"][b] + dq**2)) / wsum,
        "var_phi": total(w * (bins["var_phi"][b] + dp**2)) / wsum,
        "cov_qphi": total(w * (bins["cov_qphi"][b] + dq * dp)) / wsum,
        "background": total(np.zeros(b.size) if background is None else background[b]),
    }  # fmt: skip
    first = np.zeros(n, np.int64)
    first[inv[::-1]] = np.arange(b.size)[::-1]  # one element of each merged bin
    counts = np.bincount(inv, weights=win.counts, minlength=n).astype(np.int64)
    out = Windows(win.pix[first], np.arange(n), win.peak[first], counts, win.centre_q,
                  win.centre_phi, win.half)  # fmt: skip
    return out, merged, inv
