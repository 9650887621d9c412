"""The pixel → bin map: polar (q, φ) bins around every peak the material's priors allow.

Regions: one SAXS annulus covering every reflection of every lattice inside the prior box
(a_mean, a_ratio, γ; any orientation), and WAXS annuli around each reflection for every
a_AL in its range, each padded by ``pad_sigma`` σ of the widest peak the priors allow
(SAXS: the largest ``saxs_w_q``; WAXS: Williamson–Hall at the smallest L_nc and largest
g_q). Full azimuth, since φ and ψ are free. Bins are cells of (Δq, Δφ) per region (sizes
from the preset's ``[reduce]`` table); a pixel belongs to exactly one bin or to none, so
binned counts stay Poisson. Masked pixels are in no bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..physics import DetectorGeometry, saxs_reflections, waxs_reflections, wh_widths
from ..physics.peaks import FWHM_PER_SIGMA

SAXS, WAXS = 0, 1


def _value(preset, table, key):
    return float(preset[table][key]["value"])


def _range(preset, name):
    try:
        lo, hi = preset["priors"][name]["range"]
    except KeyError:
        raise InputError(preset.get("_path"), f"prior '{name}' has no range = [lo, hi]") from None
    return float(lo), float(hi)


def peak_regions(preset: dict) -> list[tuple[int, float, float]]:
    """q intervals [nm⁻¹] to bin, as (region, q_lo, q_hi), from the preset's prior ranges."""
    pad = _value(preset, "reduce", "pad_sigma")
    am = np.linspace(*_range(preset, "a_mean"), 9)
    ar = np.linspace(*_range(preset, "a_ratio"), 9)
    ga = np.linspace(*_range(preset, "gamma"), 9)
    A, R, G = np.meshgrid(am, ar, ga, indexing="ij")
    a1 = 2.0 * A / (1.0 + R)
    q, _ = saxs_reflections(a1, a1 * R, G, 0.0, preset["xray"]["saxs_reflections"])
    sig_saxs = _range(preset, "saxs_w_q")[1] / FWHM_PER_SIGMA
    regions = [(SAXS, max(q.min() - pad * sig_saxs, 0.02), q.max() + pad * sig_saxs)]
    hk = preset["xray"]["waxs_reflections"]
    a_lo, a_hi = _range(preset, "a_AL")
    q_lo, _ = waxs_reflections(a_hi, 0.0, hk)
    q_hi, _ = waxs_reflections(a_lo, 0.0, hk)
    w_max, _ = wh_widths(
        q_hi, _range(preset, "L_nc")[0], _range(preset, "g_q")[1] / 100.0, 0.0,
        _value(preset, "constants", "K_scherrer"),
    )  # fmt: skip
    intervals = sorted(
        zip(q_lo - pad * w_max / FWHM_PER_SIGMA, q_hi + pad * w_max / FWHM_PER_SIGMA, strict=True)
    )
    merged = [list(intervals[0])]
    for lo, hi in intervals[1:]:
        if lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if merged[0][0] <= regions[0][2]:
        raise InputError(
            preset.get("_path"), "SAXS and WAXS regions overlap: check the prior ranges"
        )
    return regions + [(WAXS, lo, hi) for lo, hi in merged]


@dataclass
class BinMap:
    """Pixel → bin map and what a model needs to predict each bin's expected counts.

    Attributes (per bin unless said)
    ----------
    pixel_bin : (rows, cols) int32, -1 for pixels in no bin.
    q_nm_inv, phi_deg : mean q [nm⁻¹] and mean azimuth [degree] of the bin's pixels.
    npix : pixels in the bin.
    weight : Σ |∂(q,φ)/∂(row,col)| cos³2θ P over the pixels [nm⁻¹ degree]: expected counts of a
        smooth density d(q, φ) are ≈ d(q̄, φ̄) · weight.
    factor : Σ cos³2θ · P over the pixels [1] (solid angle × polarisation, summed).
    q_wmean, phi_wmean : weight-weighted mean q [nm⁻¹] and azimuth [degree] of the pixel
        centres (|∂(q,φ)/∂(row,col)| cos³2θ P varies across a bin near the beam, so this, not the
        plain mean, is where a smooth density is best evaluated).
    var_q, var_phi, cov_qphi : weighted spread of the pixel centres about (q_wmean, phi_wmean)
        inside the bin [nm⁻², degree², nm⁻¹
        degree]; a Gaussian peak's bin counts are ≈ weight · N(q̄, φ̄; peak, Σ_peak + Σ_bin).
    region : 0 SAXS, 1 WAXS.
    q_lo, q_hi, phi_lo, phi_hi : cell edges.
    """

    pixel_bin: np.ndarray
    q_nm_inv: np.ndarray
    phi_deg: np.ndarray
    npix: np.ndarray
    weight: np.ndarray
    factor: np.ndarray
    q_wmean: np.ndarray
    phi_wmean: np.ndarray
    var_q: np.ndarray
    var_phi: np.ndarray
    cov_qphi: np.ndarray
    region: np.ndarray
    q_lo: np.ndarray
    q_hi: np.ndarray
    phi_lo: np.ndarray
    phi_hi: np.ndarray

    @property
    def n_bins(self) -> int:
        return int(self.npix.size)

    def bin_arrays(self) -> dict:
        """The per-bin arrays by their reduced.h5 names (``bin_*``)."""
        names = ("q_nm_inv", "phi_deg", "npix", "weight", "factor", "q_wmean", "phi_wmean",
                 "var_q", "var_phi", "cov_qphi",
                 "region", "q_lo", "q_hi", "phi_lo", "phi_hi")  # fmt: skip
        return {f"bin_{n}": getattr(self, n) for n in names}


def build_bin_map(geometry: DetectorGeometry, shape, pixel_mask, preset) -> BinMap:
    """Bin every unmasked pixel inside a peak region (see module docstring)."""
    maps = geometry.maps(shape)
    q, phi = maps["q_nm_inv"].ravel(), maps["phi_deg"].ravel()
    jac = maps["jacobian"].ravel()
    fac = maps["intensity_factor"].ravel()
    ok = ~np.asarray(pixel_mask, bool).ravel() & np.isfinite(jac)
    key = np.full(q.size, -1, np.int64)
    meta = []  # per region: (region kind, q_lo, dq, dphi, key offset, n_q)
    offset = 0
    for kind, lo, hi in peak_regions(preset):
        name = "saxs" if kind == SAXS else "waxs"
        dq, dphi = _value(preset, "reduce", f"{name}_dq"), _value(preset, "reduce", f"{name}_dphi")
        if abs(360.0 / dphi - round(360.0 / dphi)) > 1e-9:
            raise InputError(preset.get("_path"), f"[reduce] {name}_dphi must divide 360 degrees")
        n_q, n_phi = int(np.ceil((hi - lo) / dq)), int(round(360.0 / dphi))
        inside = ok & (q >= lo) & (q < lo + n_q * dq)
        qi = ((q[inside] - lo) // dq).astype(np.int64)
        pi = np.minimum((phi[inside] // dphi).astype(np.int64), n_phi - 1)
        key[inside] = offset + qi * n_phi + pi
        meta.append((kind, lo, dq, dphi, offset, n_phi))
        offset += n_q * n_phi
    used = key >= 0
    if not used.any():
        raise InputError(None, "no unmasked detector pixel lies in any peak region")
    keys, inv = np.unique(key[used], return_inverse=True)
    pixel_bin = np.full(q.size, -1, np.int32)
    pixel_bin[used] = inv
    n = keys.size

    def total(w):
        return np.bincount(inv, weights=w, minlength=n)

    npix = total(np.ones(inv.size)).astype(np.int64)
    qm, pm = total(q[used]) / npix, total(phi[used]) / npix
    w = jac[used] * fac[used]
    wsum = total(w)
    qw, pw = total(w * q[used]) / wsum, total(w * phi[used]) / wsum
    dq_, dp_ = q[used] - qw[inv], phi[used] - pw[inv]
    starts = np.array([m[4] for m in meta])
    r = np.searchsorted(starts, keys, side="right") - 1
    kind = np.array([m[0] for m in meta])[r]
    lo = np.array([m[1] for m in meta])[r]
    dq = np.array([m[2] for m in meta])[r]
    dphi = np.array([m[3] for m in meta])[r]
    n_phi = np.array([m[5] for m in meta])[r]
    local = keys - starts[r]
    qi, pi = local // n_phi, local % n_phi
    return BinMap(
        pixel_bin=pixel_bin.reshape(shape),
        q_nm_inv=qm, phi_deg=pm, npix=npix,
        weight=wsum, factor=total(fac[used]), q_wmean=qw, phi_wmean=pw,
        var_q=total(w * dq_**2) / wsum, var_phi=total(w * dp_**2) / wsum,
        cov_qphi=total(w * dq_ * dp_) / wsum,
        region=kind.astype(np.uint8),
        q_lo=lo + qi * dq, q_hi=lo + (qi + 1) * dq, phi_lo=pi * dphi, phi_hi=(pi + 1) * dphi,
    )  # fmt: skip


def bin_cells(bins: dict, region: int):
    """Bins of one region as cells of its (q, φ) grid.

    Returns (bin indices, q-cell index, φ-cell index, grid shape) for the bins whose
    ``bin_region`` is ``region``; ``bins`` holds the per-bin arrays without the ``bin_`` prefix.
    """
    sel = np.flatnonzero(bins["region"] == region)
    dq = float(np.median(bins["q_hi"][sel] - bins["q_lo"][sel]))
    dphi = float(np.median(bins["phi_hi"][sel] - bins["phi_lo"][sel]))
    q_lo = bins["q_lo"][sel]
    iq = np.rint((q_lo - q_lo.min()) / dq).astype(int)
    ip = np.rint(bins["phi_lo"][sel] / dphi).astype(int)
    return sel, iq, ip, (int(iq.max()) + 1, int(round(360 / dphi)))
