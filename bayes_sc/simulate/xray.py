"""Simulated EIGER X 4M frames of a supercrystal scan (Poisson counts, real detector defects).

Each frame's expected counts are the Kapton/air background template (scaled per frame) plus
the SAXS peaks placed by the pixel's lattice and the WAXS peaks placed and broadened by ψ, δψ,
g_q through Williamson–Hall, all through the same physics kernels the models use (SPEC §5).
Peaks are evaluated only on precomputed pixel sets (the SAXS disc, one annulus per WAXS
reflection), so a 4M frame costs about one Poisson draw.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from ..io.eiger_write import EIGER4M_SHAPE, eiger4m_gap_mask
from ..physics import (
    DetectorGeometry,
    gaussian2d_density,
    saxs_reflections,
    waxs_reflections,
    wh_widths,
)

# NXmx pixel_mask bits (DECTRIS): 0 gap, 1 dead, 3 over-responding (hot), 8 user (beamstop).
DEAD, HOT, USER = 1 << 1, 1 << 3, 1 << 8
N_SIGMA = 6.0  # peaks are evaluated within ±6 σ (relative error < 1e-7 of I0)


def with_friedel(hk):
    """Reflections plus their Friedel mates -G."""
    hk = np.asarray(hk, dtype=float)
    return np.concatenate([hk, -hk])


def detector_mask(geometry: DetectorGeometry, shape, rng, beamstop_px: float = 14.0):
    """NXmx pixel mask: EIGER 4M module gaps, ~0.02 % dead and hot pixels, beamstop + arm."""
    mask = eiger4m_gap_mask(shape).astype(np.uint32)
    n_bad = int(2e-4 * mask.size)
    flat = mask.reshape(-1)
    flat[rng.choice(mask.size, n_bad, replace=False)] |= DEAD
    flat[rng.choice(mask.size, n_bad // 4, replace=False)] |= HOT
    rows, cols = np.indices(shape)
    dr, dc = rows - geometry.beam_center_y, cols - geometry.beam_center_x
    stop = dr**2 + dc**2 < beamstop_px**2
    stop |= (np.abs(dr) < 3) & (dc > 0)  # the beamstop's holder arm, towards +X
    mask[stop] |= USER
    return mask


def kapton_template(q_nm_inv, intensity_factor, level):
    """Expected background counts per pixel per frame (Kapton film + air) [counts].

    A small-angle power law and Kapton's broad amorphous halos; ``level`` sets the scale
    near the beamstop. Smooth in q, so the models can scale it as a template.
    """
    q = np.maximum(q_nm_inv, 0.05)
    shape = 0.25 * (q / 0.3) ** -2.0 + 0.5 * np.exp(-0.5 * ((q - 4.3) / 0.7) ** 2)
    shape += 0.35 * np.exp(-0.5 * ((q - 12.5) / 3.0) ** 2) + 0.05
    return level * shape * intensity_factor


@dataclass
class XrayScene:
    """Everything that is fixed over a scan: geometry maps, mask, background, pixel sets."""

    geometry: DetectorGeometry
    shape: tuple[int, int]
    q: np.ndarray
    phi: np.ndarray
    weight: np.ndarray  # Jacobian × cos³2θ × polarisation per pixel
    background: np.ndarray
    mask: np.ndarray
    saxs_idx: np.ndarray
    waxs_idx: list
    saxs_hk: np.ndarray
    saxs_rel: np.ndarray
    waxs_hk: np.ndarray
    waxs_rel: np.ndarray
    K: float

    @classmethod
    def build(cls, cfg, xray_preset, constants, mask, shape=EIGER4M_SHAPE):
        """Precompute the scene for the preset's geometry and a detector ``mask`` (uint32)."""
        geom = DetectorGeometry(
            cfg["beam_center_x"], cfg["beam_center_y"], cfg["distance_mm"],
            cfg["wavelength_nm"], cfg["pixel_size_mm"],
        )  # fmt: skip
        maps = geom.maps(shape)
        q = maps["q_nm_inv"].reshape(-1)
        saxs_hk = with_friedel(xray_preset["saxs_reflections"])
        waxs_hk = with_friedel(xray_preset["waxs_reflections"])
        saxs_rel = np.tile(np.asarray(cfg["saxs_relative_intensity"], float), 2)
        waxs_rel = np.tile(np.asarray(cfg["waxs_relative_intensity"], float), 2)
        q_waxs, _ = waxs_reflections(cfg["a_AL_nm"], 0.0, waxs_hk)
        # Widest WAXS peak allowed (g_q 5 %) sets each annulus' half width.
        w_max, _ = wh_widths(
            q_waxs, cfg["L_nc_nm"] * 0.6, 0.05, 0.0, constants["K_scherrer"]["value"]
        )
        half = N_SIGMA * w_max / 2.3548
        waxs_idx = [
            np.flatnonzero(np.abs(q - q0) < h).astype(np.int64)
            for q0, h in zip(q_waxs, half, strict=True)
        ]
        saxs_idx = np.flatnonzero(q < cfg["saxs_q_max"]).astype(np.int64)
        weight = (maps["jacobian"] * maps["intensity_factor"]).reshape(-1)
        weight[~np.isfinite(weight)] = 0.0  # the beam-centre pixel itself (behind the beamstop)
        bg = kapton_template(maps["q_nm_inv"], maps["intensity_factor"], cfg["background_level"])
        return cls(
            geometry=geom, shape=tuple(shape), q=q, phi=maps["phi_deg"].reshape(-1), weight=weight,
            background=bg.reshape(-1),
            mask=mask, saxs_idx=saxs_idx, waxs_idx=waxs_idx,
            saxs_hk=saxs_hk, saxs_rel=saxs_rel, waxs_hk=waxs_hk, waxs_rel=waxs_rel,
            K=constants["K_scherrer"]["value"],
        )  # fmt: skip

    def expected(self, pix: dict | None, bg_scale: float, counts_scale: float) -> np.ndarray:
        """Expected counts of one frame (flattened) for a pixel's fields (None: no crystal)."""
        lam = self.background * bg_scale
        if pix is None:
            return lam
        lam = lam.copy()
        q0, p0 = saxs_reflections(pix["a1"], pix["a2"], pix["gamma"], pix["phi"], self.saxs_hk)
        idx = self.saxs_idx
        for j in range(len(q0)):
            i0 = counts_scale * pix["I_saxs"] * self.saxs_rel[j]
            d = gaussian2d_density(
                self.q[idx], self.phi[idx], q0[j], p0[j], pix["saxs_w_q"], pix["saxs_w_phi"], i0
            )
            lam[idx] += d * self.weight[idx]
        qw, pw = waxs_reflections(pix["a_AL"], pix["psi"], self.waxs_hk)
        w_q, w_phi = wh_widths(qw, pix["L_nc"], pix["g_q"] / 100.0, pix["delta_psi"], self.K)
        for j, idx in enumerate(self.waxs_idx):
            i0 = counts_scale * pix["I_AL"] * self.waxs_rel[j]
            d = gaussian2d_density(self.q[idx], self.phi[idx], qw[j], pw[j], w_q[j], w_phi[j], i0)
            lam[idx] += d * self.weight[idx]
        return lam

    def draw(self, lam: np.ndarray, rng, saturation: int) -> np.ndarray:
        """Poisson counts of a frame; hot pixels count high and an occasional zinger saturates."""
        counts = rng.poisson(lam).astype(np.int64)
        hot = (self.mask.reshape(-1) & HOT) != 0
        counts[hot] += rng.poisson(5000.0, hot.sum())
        if rng.random() < 0.3:  # a zinger on an unmasked pixel: saturated, left out by reduce
            counts[rng.integers(counts.size)] = saturation + 1000
        # Clip as the detector does; the small dtype keeps the worker->writer pipe cheap.
        dtype = np.uint16 if saturation <= 2**16 - 1 else np.uint32
        return np.minimum(counts, saturation).astype(dtype).reshape(self.shape)


_SCENE: XrayScene | None = None


def _init_worker(build_args):
    global _SCENE
    _SCENE = XrayScene.build(*build_args)


def _frame_worker(args):
    pix, bg_scale, counts_scale, seed, saturation = args
    lam = _SCENE.expected(pix, bg_scale, counts_scale)
    return _SCENE.draw(lam, np.random.default_rng(seed), saturation)


def iter_frames(scene: XrayScene, build_args, jobs, *, processes: int = 2):
    """Yield frames for ``jobs`` (pix, bg_scale, counts_scale, seed, saturation) in order.

    With ``processes > 1`` each worker rebuilds the scene from ``build_args`` (the arguments of
    :meth:`XrayScene.build`): workers start with ``forkserver``, never forked from a process
    that may hold threads. Each frame has its own seed, so the output does not depend on
    scheduling.
    """
    global _SCENE
    _SCENE = scene
    if processes <= 1:
        yield from map(_frame_worker, jobs)
        return
    ctx = mp.get_context("forkserver")
    with ctx.Pool(processes, initializer=_init_worker, initargs=(build_args,)) as pool:
        yield from pool.imap(_frame_worker, jobs, chunksize=1)
