"""The paper's X-ray pipeline on our reduced bins (Lapkin et al., Methods).

Per scan point: subtract the substrate pattern; find the SAXS peaks; fit each peak alone by
least squares; average Friedel pairs; turn the two lowest independent reflections into the
real-space lattice (a1, a2, γ, φ). Fit the WAXS peaks 010, 020, 110, -110 alone; ψ is the
mean of their azimuths after the paper's ±45° corrections, I_AL their mean intensity.
Williamson–Hall per point with L fixed from the average pattern. Failed fits give NaN, as
they would for the paper's analysis.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..physics import canonical_lattice
from ..physics.peaks import wrap_deg
from ..reduce.bins import bin_cells
from .peakfit import fit_peak

DEG = np.pi / 180.0
SAXS_WIN = (0.3, 12.0)  # window half-widths around a SAXS peak [nm⁻¹, degree]
WAXS_WIN = (1.2, 25.0)


def find_saxs_peaks(excess, bins, n_max=8):
    """Up to ``n_max`` SAXS peak positions (q, φ) from a smoothed polar density image."""
    sel, iq, ip, shape = bin_cells(bins, 0)
    img = np.zeros(shape)
    wsum = np.zeros(shape)
    np.add.at(img, (iq, ip), excess[sel])
    np.add.at(wsum, (iq, ip), bins["weight"][sel])
    dens = np.where(wsum > 0, img / np.maximum(wsum, 1e-300), 0.0)
    sm = ndimage.gaussian_filter(dens, (1.0, 1.0), mode=("nearest", "wrap"))
    peaks = (sm == ndimage.maximum_filter(sm, size=(7, 7), mode=("nearest", "wrap"))) & (wsum > 0)
    noise = 1.4826 * np.median(np.abs(sm[wsum > 0] - np.median(sm[wsum > 0]))) + 1e-12
    cand = np.argwhere(peaks & (sm > 8 * noise))
    order = np.argsort(sm[cand[:, 0], cand[:, 1]])[::-1][:n_max]
    qc = np.zeros(shape[0])
    np.add.at(qc, iq, bins["q_nm_inv"][sel])
    qn = np.bincount(iq, minlength=shape[0])
    q_axis = qc / np.maximum(qn, 1)
    dphi = 360.0 / shape[1]
    return [(q_axis[a], (b + 0.5) * dphi) for a, b in cand[order]]


def _window(bins, region, q, phi, half):
    return np.flatnonzero(
        (bins["region"] == region) & (np.abs(bins["q_nm_inv"] - q) < half[0])
        & (np.abs(wrap_deg(bins["phi_deg"] - phi)) < half[1])
    )  # fmt: skip


def friedel_average(peaks):
    """Pair peaks at G and -G; return reflections (q, φ mod 180) averaged over each pair."""
    used, out = set(), []
    for a, pa in enumerate(peaks):
        if a in used:
            continue
        best = None
        for b, pb in enumerate(peaks):
            if b != a and b not in used and abs(wrap_deg(pb["phi0"] - pa["phi0"] - 180)) < 10:
                if abs(pb["q0"] - pa["q0"]) < 0.05 * pa["q0"]:
                    best = b
        if best is None:
            out.append((pa["q0"], pa["phi0"] % 180.0))
            used.add(a)
            continue
        pb = peaks[best]
        phi = (pa["phi0"] + 0.5 * wrap_deg(pb["phi0"] + 180 - pa["phi0"])) % 180.0
        out.append((0.5 * (pa["q0"] + pb["q0"]), phi))
        used |= {a, best}
    return sorted(out)


def lattice_from_reflections(refl):
    """(a1, a2, γ, φ) from the two lowest-q independent reflections (q, φ mod 180)."""
    if len(refl) < 2:
        return (np.nan,) * 4
    q1, p1 = refl[0]
    second = [(q, p) for q, p in refl[1:] if 20 < (p - p1) % 180 < 160]
    if not second:
        return (np.nan,) * 4
    q2, p2 = second[0]
    p2 = p1 + (p2 - p1) % 180  # b2 counter-clockwise of b1 by less than 180°
    B = np.array(
        [
            [q1 * np.cos(p1 * DEG), q1 * np.sin(p1 * DEG)],
            [q2 * np.cos(p2 * DEG), q2 * np.sin(p2 * DEG)],
        ]
    )
    A = 2 * np.pi * np.linalg.inv(B).T
    a1v, a2v = A
    t1, t2 = np.arctan2(a1v[1], a1v[0]) / DEG, np.arctan2(a2v[1], a2v[0]) / DEG
    gamma = (t2 - t1) % 360
    if gamma > 180:  # keep a2 counter-clockwise of a1 (SPEC §5)
        a1v, a2v, t1, t2 = a2v, a1v, t2, t1
        gamma = 360 - gamma
    return np.linalg.norm(a1v), np.linalg.norm(a2v), gamma, (t1 + gamma / 2) % 360


def fit_waxs(excess, bins, q010, psi_guess, hk_offsets):
    """Fit WAXS peaks; returns list of (h, k, fit dict)."""
    out = []
    for (h, k), off in hk_offsets:
        q = q010 * np.hypot(h, k)
        phi = psi_guess + off
        sel = _window(bins, 1, q, phi, WAXS_WIN)
        out.append(((h, k), off, fit_peak(excess, bins, sel, q, phi, 0.35, 6.0)))
    return out


def azimuth_guess(excess, bins, q, half=0.7):
    """Azimuth [degree] of the strongest intensity on the ring at q (2° cells, smoothed)."""
    sel = np.flatnonzero((bins["region"] == 1) & (np.abs(bins["q_nm_inv"] - q) < half))
    cell = (bins["phi_deg"][sel] // 2).astype(int)
    num = np.bincount(cell, excess[sel], minlength=180)
    den = np.bincount(cell, bins["weight"][sel], minlength=180)
    prof = ndimage.gaussian_filter1d(
        np.where(den > 0, num / np.maximum(den, 1e-300), 0.0), 2, mode="wrap"
    )
    return (np.argmax(prof) + 0.5) * 2.0


def average_pattern_wh(excess_sum, bins, q_rings, K):
    """L [nm] and g from radial widths of the average pattern's WAXS rings (WH regression)."""
    wq = []
    for q0 in q_rings:
        sel = np.flatnonzero((bins["region"] == 1) & (np.abs(bins["q_nm_inv"] - q0) < 2.0))
        qc = np.round(bins["q_nm_inv"][sel] / 0.1).astype(int)
        num = np.bincount(qc - qc.min(), excess_sum[sel])
        den = np.bincount(qc - qc.min(), bins["weight"][sel])
        ok = den > 0
        qq = (np.arange(num.size)[ok] + qc.min()) * 0.1
        prof = num[ok] / den[ok]
        from scipy.optimize import curve_fit

        def g(x, a, m, s, c0, c1, c2, q0=q0):  # quadratic: residual substrate halos are broad
            return a * np.exp(-0.5 * ((x - m) / s) ** 2) + c0 + c1 * (x - q0) + c2 * (x - q0) ** 2

        try:
            p, _ = curve_fit(g, qq, prof, p0=[prof.max(), q0, 0.35, 0, 0, 0], maxfev=5000)
            wq.append((p[1], 2.3548 * abs(p[2])))
        except RuntimeError:
            continue
    if len(wq) < 2:
        return np.nan, np.nan, wq
    q, w = np.array(wq).T
    slope, icpt = np.polyfit(q**2, w**2, 1)
    L = 2 * np.pi * K / np.sqrt(icpt) if icpt > 0 else np.nan
    return L, np.sqrt(max(slope, 0.0)), wq


def description_reference(phi_deg) -> float:
    """Reference azimuth for :func:`canonical_lattice`: the circular mean of φ modulo 90°.

    Each lattice has descriptions with φ and φ + 90° (SPEC §5), so every pixel has one within
    ±45° of this reference: the chosen descriptions then agree between neighbours.
    """
    phi = np.asarray(phi_deg, float)
    phi = phi[np.isfinite(phi)]
    if phi.size == 0:
        return 90.0
    z = np.exp(1j * 2 * np.pi * phi / 90.0).mean()
    return float((np.angle(z) * 90.0 / (2 * np.pi)) % 90.0)


def baseline_xray(data, preset) -> dict:
    """The paper's maps for an :class:`~bayes_sc.modeling.xray_data.XrayData` scan.

    Returns (ny, nx) maps (NaN where fits failed or outside the crystal) of a1, a2, a_mean
    [nm], a_ratio, gamma, phi, psi, delta_psi [degree], g_q [percent], I_AL [counts], and the
    scalars a_AL, L_nc [nm].
    """
    bins, K = data.bins, float(preset["constants"]["K_scherrer"]["value"])
    bg = data.background if data.background is not None else np.zeros(data.counts.shape[1])
    ny, nx = data.scan_shape
    names = ("a1", "a2", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")
    maps = {k: np.full((ny, nx), np.nan) for k in names}
    frames = data.frames
    excess_sum = data.counts[frames].sum(axis=0, dtype=np.float64) - len(frames) * bg
    a_al0 = float(preset["priors"]["a_AL"]["mu"])
    ring_q = [2 * np.pi * np.hypot(h, k) / a_al0 for h, k in ((0, 1), (1, 1), (0, 2))]
    L, g_avg, fits = average_pattern_wh(excess_sum, bins, ring_q, K)
    hks = ((0, 1), (1, 1), (0, 2))
    ring_a = [2 * np.pi * np.hypot(*hk) / q for (q, _), hk in zip(fits, hks, strict=False)]
    a_al = float(np.mean(ring_a)) if ring_a else a_al0
    q010 = 2 * np.pi / a_al
    hk_off = [((0, 1), 0.0), ((0, 2), 0.0), ((1, 1), -45.0), ((-1, 1), 45.0)]
    for f, r, c in zip(frames, data.graph.rows, data.graph.cols, strict=True):
        ex = data.counts[f].astype(np.float64) - bg
        peaks = []
        for q, phi in find_saxs_peaks(ex, bins):
            res = fit_peak(ex, bins, _window(bins, 0, q, phi, SAXS_WIN), q, phi, 0.035, 2.5)
            if res["ok"]:
                peaks.append(res)
        a1, a2, gam, ph = lattice_from_reflections(friedel_average(peaks))
        maps["a1"][r, c], maps["a2"][r, c], maps["gamma"][r, c], maps["phi"][r, c] = a1, a2, gam, ph
        psi0 = azimuth_guess(ex, bins, q010)
        wfits = [(hk, off, p) for hk, off, p in fit_waxs(ex, bins, q010, psi0, hk_off) if p["ok"]]
        if not wfits:
            continue
        psis = np.array([p["phi0"] - off for _, off, p in wfits])
        maps["psi"][r, c] = (psi0 + np.mean(wrap_deg(psis - psi0))) % 360
        maps["I_AL"][r, c] = np.mean([p["I0"] for *_, p in wfits])
        qs = np.array([p["q0"] for *_, p in wfits])
        size = 2 * np.pi * K / L
        g2 = np.mean(([p["w_q"] for *_, p in wfits] ** np.float64(2) - size**2) / qs**2)
        d2 = np.mean(np.radians([p["w_phi"] for *_, p in wfits]) ** 2 - (size / qs) ** 2)
        maps["g_q"][r, c] = 100 * np.sqrt(max(g2, 0.0))  # censored at 0, as in the paper
        maps["delta_psi"][r, c] = np.degrees(np.sqrt(max(d2, 0.0)))
    ref = description_reference(maps["phi"])
    a1, a2, gam, ph = canonical_lattice(maps["a1"], maps["a2"], maps["gamma"], maps["phi"], ref)
    maps.update(a1=a1, a2=a2, gamma=gam, phi=ph, a_mean=0.5 * (a1 + a2), a_ratio=a2 / a1)
    maps.update(a_AL=a_al, L_nc=L, g_avg_percent=100 * g_avg)
    return maps
