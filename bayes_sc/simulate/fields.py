"""Crystal shapes and the true structural fields of a simulated supercrystal.

The structural fields follow the paper's trends as smooth functions of edge distance
(SPEC §8), plus local noise: <a> shrinks towards the edges, a2/a1 departs from 1 along the
nearest boundary, γ turns obtuse towards corners, φ varies inhomogeneously, ψ ≈ φ + 45°,
δψ and g_q grow towards the edges and I_AL falls there. Every number comes from the
preset's ``[simulate.xray]`` table.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..physics import edge_distance_grid
from ..physics.edge import points_in_polygon

# Edge-distance scale [µm] over which the profiles move from edge to centre values; the paper
# sees g_q settle about 3 µm inside.
PROFILE_SCALE_UM = 1.2


def crystal_outline(center_um, half_size_um, rng, *, n_vertices=64, rotation_deg=None):
    """A rounded-square crystal outline [µm], (M, 2) polygon of (x, y) vertices.

    A superellipse (exponent 4: the faceted, rounded shape of the paper's supercrystals)
    with a random rotation and a few per cent of smooth shape noise.
    """
    rot = np.radians(rng.uniform(0, 90) if rotation_deg is None else rotation_deg)
    t = np.linspace(0, 2 * np.pi, n_vertices, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    n = 4.0
    r = (np.abs(c) ** n + np.abs(s) ** n) ** (-1.0 / n)
    wobble = (
        1.0
        + 0.04 * np.sin(2 * t + rng.uniform(0, 2 * np.pi))
        + 0.03 * np.sin(3 * t + rng.uniform(0, 2 * np.pi))
    )
    x = half_size_um[0] * r * c * wobble
    y = half_size_um[1] * r * s * wobble
    xr = x * np.cos(rot) - y * np.sin(rot) + center_um[0]
    yr = x * np.sin(rot) + y * np.cos(rot) + center_um[1]
    return np.stack([xr, yr], axis=1)


def grid_mask(outline_um, shape, step_um):
    """Cells (ny, nx) whose centres (x = col·dx, y = row·dy) lie inside the outline."""
    yy, xx = np.indices(shape, dtype=float)
    inside = points_in_polygon((xx * step_um[1]).ravel(), (yy * step_um[0]).ravel(), outline_um)
    return inside.reshape(shape)


def edge_profile(edge_um, scale_um=PROFILE_SCALE_UM):
    """0 at the edge rising smoothly to 1 inside: 1 - exp(-edge/scale)."""
    return 1.0 - np.exp(-np.asarray(edge_um, dtype=float) / scale_um)


def profile_value(edge_um, centre_edge, scale_um=PROFILE_SCALE_UM):
    """Value of a (centre, edge) pair of a field at edge distance ``edge_um``."""
    centre, edge = centre_edge
    return edge + (centre - edge) * edge_profile(edge_um, scale_um)


def profile_scales(cfg) -> dict:
    """Edge-distance scale [µm] of each covariate's profile: the preset's optional
    ``profile_scale_um`` table over the defaults (⟨a⟩ and δψ 1.2 µm; g_q twice as slow, the
    paper's ~3 µm). Equal scales make ⟨a⟩ and δψ exactly collinear in edge distance."""
    scales = {"a_mean": PROFILE_SCALE_UM, "delta_psi": PROFILE_SCALE_UM,
              "g_q": 2.0 * PROFILE_SCALE_UM}  # fmt: skip
    scales.update({k: float(v) for k, v in cfg.get("profile_scale_um", {}).items()})
    return scales


def smooth_noise(shape, rng, length_px):
    """Zero-mean, unit-sd Gaussian random field with correlation length ``length_px``."""
    z = ndimage.gaussian_filter(rng.standard_normal(shape), length_px, mode="reflect")
    return (z - z.mean()) / z.std()


def xray_fields(mask, step_um, cfg, rng):
    """True per-pixel X-ray fields on the scan grid (NaN outside the crystal).

    Parameters
    ----------
    mask
        Crystal mask (ny, nx).
    step_um
        Scan steps (dy, dx) [µm].
    cfg
        The preset's ``[simulate.xray]`` table.
    rng
        ``numpy.random.Generator``.

    Returns
    -------
    dict of (ny, nx) arrays: a1, a2, a_mean, a_ratio [nm, 1], gamma, phi, psi, delta_psi
    [degree], g_q [percent], I_AL, I_saxs [counts], saxs_w_q [nm⁻¹], saxs_w_phi [degree],
    edge_um; and scalars a_AL, L_nc [nm].
    """
    shape = mask.shape
    edge = edge_distance_grid(mask, step_um)
    p = edge_profile(edge)
    # Direction of the nearest boundary: the edge-distance gradient is its normal.
    gy, gx = np.gradient(ndimage.gaussian_filter(edge, 0.7), *step_um)
    tangent_deg = (np.degrees(np.arctan2(gy, gx)) + 90.0) % 180.0
    yy, xx = np.indices(shape)
    cy, cx = (np.array(np.nonzero(mask)).mean(axis=1)) if mask.any() else (0.0, 0.0)
    radial_deg = np.degrees(np.arctan2((yy - cy) * step_um[0], (xx - cx) * step_um[1]))

    scale = profile_scales(cfg)
    a_mean = profile_value(edge, cfg["a_mean_nm"], scale["a_mean"]) + 0.08 * rng.standard_normal(
        shape
    )
    phi_lo, phi_hi = cfg["phi_deg"]
    phi = 0.5 * (phi_lo + phi_hi) + 0.25 * (phi_hi - phi_lo) * smooth_noise(shape, rng, 2.0)
    phi += 1.5 * rng.standard_normal(shape)  # inhomogeneous pixel-to-pixel changes (paper)
    # γ: square in the centre, obtuse towards the corners (diagonals of the crystal).
    corner = (1.0 - p) * np.abs(np.sin(np.radians(2.0 * (radial_deg - tangent_deg)))) ** 2
    gamma = cfg["gamma_deg"][0] + (cfg["gamma_deg"][1] - cfg["gamma_deg"][0]) * corner
    gamma += 1.0 * rng.standard_normal(shape)
    # a2/a1: the lattice vector nearer the boundary's direction shrinks towards the edge.
    shrink = 1.0 - (1.0 - cfg["a_ratio_edge"]) * (1.0 - p)
    d1 = np.abs(((phi - gamma / 2.0) - tangent_deg + 90.0) % 180.0 - 90.0)
    d2 = np.abs(((phi + gamma / 2.0) - tangent_deg + 90.0) % 180.0 - 90.0)
    f1 = np.where(d1 < d2, shrink, 1.0)
    f2 = np.where(d1 < d2, 1.0, shrink)
    f1, f2 = (
        f1 * (1 + 0.01 * rng.standard_normal(shape)),
        f2 * (1 + 0.01 * rng.standard_normal(shape)),
    )
    a1 = 2.0 * a_mean * f1 / (f1 + f2)
    a2 = 2.0 * a_mean * f2 / (f1 + f2)
    psi = phi + 45.0 + 1.5 * rng.standard_normal(shape)
    delta_psi = profile_value(
        edge, cfg["delta_psi_deg"], scale["delta_psi"]
    ) + 0.8 * rng.standard_normal(shape)
    # g_q: ~1 % about 3 µm inside, 2 % at the edge (a slower profile than the others).
    g_q = profile_value(edge, cfg["g_q_percent"], scale["g_q"]) + 0.08 * rng.standard_normal(shape)
    I_AL = cfg["I_AL_counts"] * (0.35 + 0.65 * p) * np.exp(0.05 * rng.standard_normal(shape))
    I_saxs = cfg["I_saxs_counts"] * (0.3 + 0.7 * p) * np.exp(0.05 * rng.standard_normal(shape))
    w_q = cfg["saxs_w_q"] * (1.0 + 1.2 * (1.0 - p))
    w_phi = cfg["saxs_w_phi_deg"] * (1.0 + 0.8 * (1.0 - p))

    out = {
        "a1": a1,
        "a2": a2,
        "a_mean": 0.5 * (a1 + a2),
        "a_ratio": a2 / a1,
        "gamma": gamma,
        "phi": phi,
        "psi": psi,
        "delta_psi": np.maximum(delta_psi, 0.5),
        "g_q": np.maximum(g_q, 0.05),
        "I_AL": I_AL,
        "I_saxs": I_saxs,
        "saxs_w_q": w_q,
        "saxs_w_phi": w_phi,
    }
    for k in out:
        out[k] = np.where(mask, out[k], np.nan)
    out["edge_um"] = edge
    out["a_AL"] = float(cfg["a_AL_nm"])
    out["L_nc"] = float(cfg["L_nc_nm"])
    return out


def structural_profiles(edge_um, cfg):
    """Smooth (noise-free) covariate profiles <a> [nm], δψ [degree], g_q [percent] vs edge
    distance, the functions the optical law is written in."""
    scale = profile_scales(cfg)
    return {
        "a_mean": profile_value(edge_um, cfg["a_mean_nm"], scale["a_mean"]),
        "delta_psi": profile_value(edge_um, cfg["delta_psi_deg"], scale["delta_psi"]),
        "g_q": profile_value(edge_um, cfg["g_q_percent"], scale["g_q"]),
    }
