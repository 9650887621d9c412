"""Simulated supercrystals written in the real file formats, with their truth (SPEC §3, §4).

``simulate_supercrystal`` writes, under OUTDIR::

    xray/scan_master.h5 (+ scan_data_*.h5)   EIGER X 4M scan, bitshuffle-LZ4
    xray/kapton_master.h5 (+ data)           bare-substrate background frames
    flim/map.ptu, flim/irf.h5                PicoQuant T3 image, measured IRF
    pl/spectra.h5                            PL spectra with the crystal outline
    truth.h5                                 every SPEC §7 variable on its grid, law coefficients
    supercrystal.toml                        the manifest
"""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..io.eiger import GEOMETRY_KEYS
from ..io.eiger_write import EIGER4M_SHAPE, write_eiger
from ..io.h5util import atomic_path
from ..io.irf import write_irf_h5
from ..io.pl_spectra import write_pl_spectra
from ..io.ptu import write_flim_ptu
from ..physics import DetectorGeometry
from ..presets import load_preset
from .fields import crystal_outline, grid_mask, xray_fields
from .optics import COVARIATES, law_coefficients, simulate_flim, simulate_pl
from .xray import XrayScene, detector_mask, iter_frames

__all__ = ["expected_reduced_xray", "expected_xray_frames", "simulate_supercrystal"]

XRAY_TRUTH = ("a1", "a2", "a_mean", "a_ratio", "gamma", "phi", "psi", "delta_psi", "g_q", "I_AL")
XRAY_EXTRA = ("I_saxs", "saxs_w_q", "saxs_w_phi", "edge_um")


def simulate_supercrystal(
    outdir,
    *,
    preset: str = "cspbbr2cl",
    scan_shape: tuple[int, int] = (8, 8),
    seed: int = 0,
    counts_scale: float = 1.0,
    progress: bool = True,
    processes: int = 2,
) -> Path:
    """Simulate one supercrystal and write it in the formats of SPEC §4.

    Parameters
    ----------
    outdir
        Output folder (created; must be empty or hold an earlier simulation).
    preset
        Material preset name or TOML path (its ``[simulate.*]`` tables set every number).
    scan_shape
        X-ray scan points (ny, nx); the FLIM image covers the same area at its pixel size.
    seed
        Seed of every random draw: the same seed gives the same files.
    counts_scale
        Multiplies all signal counts (X-ray peaks, FLIM photons, PL amplitudes) [1].
    progress
        Show a progress bar over frames.
    processes
        Worker processes drawing X-ray frames.

    Returns
    -------
    pathlib.Path
        The written ``supercrystal.toml``.
    """
    outdir = Path(outdir)
    if outdir.exists() and any(outdir.iterdir()) and not (outdir / "truth.h5").exists():
        raise InputError(outdir, "output folder is not empty and holds no earlier simulation")
    if counts_scale <= 0 or not math.isfinite(counts_scale):
        raise InputError(None, f"--counts must be a positive number, got {counts_scale}")
    ny, nx = scan_shape
    if ny < 2 or nx < 2:
        raise InputError(None, f"scan must be at least 2x2, got {ny}x{nx}")
    pre = load_preset(preset)
    sim = pre["simulate"]
    xcfg, fcfg, pcfg, law = sim["xray"], sim["flim"], sim["pl"], sim["law"]
    rng_shape, rng_fields, rng_det, rng_frames, rng_flim, rng_pl = _streams(seed)
    for sub in ("xray", "flim", "pl"):
        (outdir / sub).mkdir(parents=True, exist_ok=True)

    # --- X-ray: a crystal on the scan grid, its fields, the frames.
    step = float(xcfg["step_um"])
    extent = np.array([nx * step, ny * step])
    outline = crystal_outline((extent - step) / 2, 0.36 * extent, rng_shape)
    mask = grid_mask(outline, (ny, nx), (step, step))
    if not mask.any():
        raise InputError(None, f"scan {ny}x{nx} is too small to hold a crystal")
    fields = xray_fields(mask, (step, step), xcfg, rng_fields)
    geom = DetectorGeometry(*(xcfg[k] for k in GEOMETRY_KEYS))
    det_mask = detector_mask(geom, EIGER4M_SHAPE, rng_det)
    build_args = (xcfg, pre["xray"], pre["constants"], det_mask)
    scene = XrayScene.build(*build_args)
    saturation = 2 ** int(xcfg["bit_depth"]) - 1
    seeds, bg_scale = _frame_plan(rng_frames, ny * nx, int(xcfg["background_frames"]))
    jobs = []
    for i in range(ny * nx):
        r, c = divmod(i, nx)
        pix = None
        if mask[r, c]:
            pix = _point_fields(fields, r, c)
        jobs.append((pix, float(bg_scale[i]), counts_scale, int(seeds[i]), saturation))
    frames = iter_frames(scene, build_args, jobs, processes=processes)
    if progress:
        frames = tqdm(frames, total=len(jobs), desc="simulate X-ray frames", unit="frame")
    common = dict(
        geometry=scene.geometry, pixel_mask=scene.mask, bit_depth=int(xcfg["bit_depth"]),
        count_time_s=float(xcfg["count_time_s"]),
    )  # fmt: skip
    write_eiger(
        outdir / "xray/scan_master.h5", frames, frames_per_file=nx, n_frames=ny * nx, **common
    )
    n_bg = int(xcfg["background_frames"])
    bg_jobs = [(None, 1.0, 1.0, int(s), saturation) for s in seeds[ny * nx :]]
    write_eiger(
        outdir / "xray/kapton_master.h5", iter_frames(scene, build_args, bg_jobs, processes=1),
        frames_per_file=n_bg, n_frames=n_bg, **common,
    )  # fmt: skip

    # --- FLIM and PL: a second crystal, on glass, covering the same area.
    pixel_um = float(fcfg["pixel_um"])
    fshape = (int(math.ceil(extent[1] / pixel_um)), int(math.ceil(extent[0] / pixel_um)))
    f_extent = np.array([fshape[1], fshape[0]]) * pixel_um
    f_outline = crystal_outline((f_extent - pixel_um) / 2, 0.36 * f_extent, rng_flim)
    f_mask = grid_mask(f_outline, fshape, (pixel_um, pixel_um))
    counts, irf, ftruth = simulate_flim(f_mask, pixel_um, fcfg, xcfg, law, rng_flim, counts_scale)
    write_flim_ptu(
        outdir / "flim/map.ptu",
        counts,
        bin_ps=fcfg["bin_ps"],
        period_ns=fcfg["period_ns"],
        pixel_um=pixel_um,
    )
    write_irf_h5(outdir / "flim/irf.h5", irf, fcfg["bin_ps"], fcfg["period_ns"])
    lam_nm, spectra, (px, py), ptruth = simulate_pl(
        f_outline, pcfg, xcfg, law, rng_pl, counts_scale
    )
    write_pl_spectra(outdir / "pl/spectra.h5", lam_nm, spectra, px, py, f_outline)

    _write_truth(
        outdir / "truth.h5",
        fields,
        mask,
        outline,
        (step, step),
        ftruth,
        f_outline,
        ptruth,
        law,
        seed,
        pre,
        counts_scale,
    )
    manifest = outdir / "supercrystal.toml"
    with atomic_path(manifest) as tmp:
        tmp.write_text(_manifest_text(pre, scan_shape, step, seed))
    return manifest


def _write_truth(
    path, fields, mask, outline, step, ftruth, f_outline, ptruth, law, seed, pre, counts_scale
):
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(seed=seed, material=pre["material"]["name"], preset=pre["_path"],
                       counts_scale=counts_scale)  # fmt: skip
        gx = f.create_group("xray")
        for k in XRAY_TRUTH + XRAY_EXTRA:
            gx[k] = fields[k]
        gx["a_AL"], gx["L_nc"] = fields["a_AL"], fields["L_nc"]
        gx["mask"], gx["outline_um"] = mask, outline
        gx.attrs["step_um"] = step
        gf = f.create_group("flim")
        for k in ("tau", "amplitude", "mask", "edge_um"):
            gf[k] = ftruth[k]
        gf["irf_shift"], gf["background"] = ftruth["irf_shift"], ftruth["background"]
        gf["outline_um"] = f_outline
        gp = f.create_group("pl")
        for k in ("E_peak", "blueshift", "x_um", "y_um", "edge_um", "amplitude"):
            gp[k] = ptruth[k]
        gl = f.create_group("law")
        gl.attrs["form"] = (
            "response = centre + sum_c beta_c (profile_c(edge) - profile_c(centre)) + noise"
        )
        for resp, coefs in law_coefficients(law).items():
            gl[f"{resp}/beta"] = np.array([coefs[c] for c in COVARIATES])
        gl["covariates"] = np.array(COVARIATES, dtype=h5py.string_dtype())
        gl["tau/centre_ns"], gl["tau/sigma"] = law["tau_centre_ns"], law["tau_sigma_ns"]
        gl["blueshift/sigma"] = law["blueshift_sigma_mev"]
        for k in ("a_mean_nm", "delta_psi_deg", "g_q_percent"):
            gl[f"profiles/{k}"] = np.asarray(pre["simulate"]["xray"][k], dtype=float)


def _streams(seed: int) -> list:
    """The simulator's independent random streams, in order: outline, fields, detector mask,
    frames, FLIM, PL (one SeedSequence spawn, so each part is reproducible on its own)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]


def _frame_plan(rng_frames, n_points: int, n_background: int):
    """Per-frame Poisson seeds (scan points, then background frames) and each scan point's
    substrate scale (beam flux and film thickness change by ~3 % between points)."""
    seeds = rng_frames.integers(0, 2**63, n_points + n_background)
    return seeds, 1.0 + 0.03 * rng_frames.standard_normal(n_points)


def _point_fields(fields, r: int, c: int) -> dict:
    """One scan point's X-ray truth as the frame model takes it (globals a_AL, L_nc added)."""
    pix = {k: float(fields[k][r, c]) for k in XRAY_TRUTH + XRAY_EXTRA}
    pix.update(a_AL=float(fields["a_AL"]), L_nc=float(fields["L_nc"]))
    return pix


def _rebuild_scene(sim_dir):
    """A simulated scan's preset, X-ray truth, scene, per-point substrate scales and counts
    scale, rebuilt from its ``truth.h5`` with the simulator's own random streams."""
    with h5py.File(Path(sim_dir) / "truth.h5", "r") as f:
        seed, counts_scale = int(f.attrs["seed"]), float(f.attrs.get("counts_scale", 1.0))
        pre = load_preset(f.attrs["preset"])
        tx = {k: v[()] for k, v in f["xray"].items() if k != "outline_um"}
    xcfg = pre["simulate"]["xray"]
    ny, nx = tx["mask"].shape
    streams = _streams(seed)
    geom = DetectorGeometry(*(xcfg[k] for k in GEOMETRY_KEYS))
    det_mask = detector_mask(geom, EIGER4M_SHAPE, streams[2])
    scene = XrayScene.build(xcfg, pre["xray"], pre["constants"], det_mask)
    _seeds, bg_scale = _frame_plan(streams[3], ny * nx, int(xcfg["background_frames"]))
    return pre, tx, scene, bg_scale.reshape(ny, nx), counts_scale


def _expected_frames(tx, scene, bg_scale, counts_scale, points, with_background):
    for r, c in points:
        pix = _point_fields(tx, r, c) if tx["mask"][r, c] else None
        scale = float(bg_scale[r, c]) if with_background else 0.0
        yield scene.expected(pix, scale, counts_scale)


def expected_xray_frames(sim_dir, points, *, with_background: bool = True):
    """The simulator's noise-free expectation of scan frames, rebuilt from its ``truth.h5``.

    Parameters
    ----------
    sim_dir
        Directory written by :func:`simulate_supercrystal`.
    points
        Iterable of (row, col) scan points.
    with_background
        Include the substrate (Kapton + air) background; False leaves the crystal's peaks alone.

    Returns
    -------
    scene, frames
        The :class:`~.xray.XrayScene` (geometry, detector mask, ``background`` template per
        pixel [counts per frame]) and a generator of each point's expected frame, flattened
        (4M,) [counts]: the Poisson means the frames were drawn from.
    """
    _pre, tx, scene, bg_scale, counts_scale = _rebuild_scene(sim_dir)
    return scene, _expected_frames(tx, scene, bg_scale, counts_scale, points, with_background)


def expected_reduced_xray(sim_dir, points, *, with_background: bool = True):
    """The simulator's noise-free expectation of scan points in the reduction's bins.

    Parameters are those of :func:`expected_xray_frames`. Returns ``(counts, template)``:
    (n_points, n_bins) expected counts per bin [counts] and (n_bins,) the substrate background
    per frame at scale 1 [counts], both binned by the bin map :func:`~bayes_sc.reduce.bins.
    build_bin_map` builds from the scan's own geometry, mask and preset (the reduced file's).
    """
    from ..reduce.bins import build_bin_map

    pre, tx, scene, bg_scale, counts_scale = _rebuild_scene(sim_dir)
    bmap = build_bin_map(scene.geometry, scene.shape, scene.mask != 0, pre)
    pb = bmap.pixel_bin.reshape(-1)
    used = pb >= 0

    def binned(values):
        return np.bincount(pb[used], values[used], minlength=bmap.n_bins)

    frames = _expected_frames(tx, scene, bg_scale, counts_scale, points, with_background)
    counts = np.array([binned(lam) for lam in frames]).reshape(-1, bmap.n_bins)
    return counts, binned(scene.background)


def _manifest_text(pre, scan_shape, step, seed) -> str:
    material = Path(pre["_path"]).stem
    return f"""# Simulated by bayes-sc simulate (seed {seed}); truth in truth.h5.
name = "sim-{material}-seed{seed}"
material = "{material}"

[xray]
master = "xray/scan_master.h5"
background = "xray/kapton_master.h5"
scan_shape = [{scan_shape[0]}, {scan_shape[1]}]
step_um = [{step}, {step}]

[flim]
ptu = "flim/map.ptu"
irf = "flim/irf.h5"

[pl]
spectra = "pl/spectra.h5"
"""
