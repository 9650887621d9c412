"""X-ray data for the models: reduced bins, background template, crystal pixels, coords.

Which scan points belong to the crystal is decided from the data: a point is crystal when the
counts in its SAXS bins exceed the background expected there (the bare-substrate frames,
scaled to one exposure) by more than ``n_sigma`` Poisson standard deviations plus
``flux_tolerance`` of the background (beam-flux drifts). Without background frames the scan's
SAXS totals are split in two groups (Otsu's threshold on their logarithm), and the split must
be clear. Pass ``crystal_mask`` to override either rule.

The substrate template is the counts per bin of every bare-substrate exposure — the
background frames and the scan points well off the crystal (:func:`substrate_frames`) — as an
isotropic radial density times each bin's weight (:func:`smooth_template`): a few frames leave
~20 % Poisson noise per bin, and a noisy template fitted with a free scale biases that scale
low (errors in variables) and pushes the misfit into the peaks' widths. Amorphous film and
air scatter isotropically and smoothly in q, so pooling the azimuths loses nothing real.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..physics import edge_distance_grid
from ..reduce.bins import bin_cells
from .graph import PixelGraph, grid_graph
from .masks import otsu_split

BIN_FIELDS = (
    "q_nm_inv", "phi_deg", "npix", "weight", "factor", "q_wmean", "phi_wmean",
    "var_q", "var_phi", "cov_qphi", "region", "q_lo", "q_hi", "phi_lo", "phi_hi",
)  # fmt: skip


@dataclass
class XrayData:
    """One scan's reduced X-ray data (SPEC §4.1) plus the crystal's pixels.

    Attributes
    ----------
    counts : (n_frames, n_bins) uint32 raw counts per bin, frames in scan order.
    frame_excluded : (n_frames,) bool, frames without any valid pixel.
    bins : dict of per-bin arrays (``q_nm_inv``, ``phi_deg``, ``weight``, ... see reduce).
    background : (n_bins,) expected background counts per frame [counts], or None.
    scan_shape, step_um : (ny, nx), (dy, dx) [µm].
    attrs : the /xray attributes (geometry, count time, ...).
    crystal_mask : (ny, nx) bool.
    graph : PixelGraph of the crystal pixels.
    edge_um : (ny, nx) edge distance [µm] (0 outside the crystal).
    """

    path: Path
    counts: np.ndarray
    frame_excluded: np.ndarray
    bins: dict
    background: np.ndarray | None
    scan_shape: tuple[int, int]
    step_um: tuple[float, float]
    attrs: dict
    crystal_mask: np.ndarray
    graph: PixelGraph
    edge_um: np.ndarray

    @property
    def frames(self) -> np.ndarray:
        """Frame index (scan order) of each crystal pixel."""
        return self.graph.rows * self.scan_shape[1] + self.graph.cols

    def coords(self) -> dict:
        """Pixel coordinates of SPEC §7 (dim ``xray_pixel``): row, col, x, y [µm], edge [µm]."""
        g, (dy, dx) = self.graph, self.step_um
        return {
            "xray_row": g.rows, "xray_col": g.cols, "xray_x_um": g.cols * dx,
            "xray_y_um": g.rows * dy, "xray_edge_um": self.edge_um[g.rows, g.cols],
        }  # fmt: skip


def saxs_excess(counts, background, region) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: SAXS-region counts and their expected background (None → zeros)."""
    saxs = region == 0
    total = counts[:, saxs].sum(axis=1, dtype=np.float64)
    expected = (
        np.full(total.shape, np.nan)
        if background is None
        else np.full(total.shape, background[saxs].sum())
    )
    return total, expected


def crystal_mask_from_data(counts, background, region, scan_shape, *, n_sigma=10.0,
                           flux_tolerance=0.05, path=None) -> np.ndarray:  # fmt: skip
    """Crystal scan points from SAXS counts (see module docstring)."""
    total, expected = saxs_excess(counts, background, region)
    if background is not None:
        crystal = total > expected * (1 + flux_tolerance) + n_sigma * np.sqrt(expected)
    else:
        logt = np.log(np.maximum(total, 1.0))
        cut, separation = otsu_split(logt)
        if separation < 5:
            raise InputError(path, "cannot tell crystal from substrate without background frames: "
                             "give a background in the manifest or a crystal mask")  # fmt: skip
        crystal = logt > cut
    return crystal.reshape(scan_shape)


def substrate_frames(crystal, frame_excluded, margin: int = 2) -> np.ndarray:
    """(n_frames,) scan points that saw bare substrate: more than ``margin`` points (8-
    neighbourhood) from any crystal point, so beam tails and diffuse edges stay out."""
    near = np.asarray(crystal, bool)
    if margin > 0:  # (scipy dilates until nothing changes for iterations < 1)
        near = ndimage.binary_dilation(near, structure=np.ones((3, 3), bool), iterations=margin)
    return ~near.reshape(-1) & ~frame_excluded


SMOOTH_HALF_Q = {0: 0.1, 1: 1.5}  # nm⁻¹: substrate-template smoothing per region (SAXS, WAXS)


def smooth_template(counts, bins, half_q=None) -> np.ndarray:
    """The substrate template: binned background counts as an isotropic density in q.

    Kapton film and air scatter isotropically: their counts per bin are a radial density
    R(q) times the bin's weight (Jacobian × solid angle × polarisation, which carry all the
    azimuthal dependence for a detector normal to the beam). R is estimated per q-cell row of
    each region from all its azimuthal cells at once (Σ counts / Σ weight), then smoothed by a
    Poisson-weighted local quadratic fit of log R over ±``half_q[region]`` nm⁻¹. Amorphous
    scatter varies over several nm⁻¹, so the fit loses nothing real, while the few background
    frames' row-to-row noise (~1 % per row, the same for every scan point) would otherwise
    distort every pixel's WAXS peak shapes alike: a 0.5 % template error under a peak that is
    a seventh of its window's counts biased the WAXS widths, and through Williamson–Hall L_nc.

    Returns the template as counts per bin, same total density as the input.
    """
    half_q = SMOOTH_HALF_Q if half_q is None else half_q
    out = np.zeros(counts.size)
    for region in np.unique(bins["region"]):
        sel, iq, _ip, shape = bin_cells(bins, region)
        num = np.bincount(iq, counts[sel], minlength=shape[0])
        den = np.bincount(iq, bins["weight"][sel], minlength=shape[0])
        qsum = np.bincount(iq, bins["weight"][sel] * bins["q_wmean"][sel], minlength=shape[0])
        rows = np.flatnonzero((den > 0) & (num > 0))
        q_row = qsum[rows] / den[rows]
        log_r = np.log(num[rows] / den[rows])
        h = float(half_q.get(int(region), 0.5))
        smooth = np.zeros(shape[0])
        for i, qi in zip(rows, q_row, strict=True):
            near = np.abs(q_row - qi) <= h
            x = q_row[near] - qi
            deg = min(2, int(near.sum()) - 1)
            coef = np.polyfit(x, log_r[near], deg, w=np.sqrt(num[rows][near]))
            smooth[i] = np.exp(coef[-1])
        out[sel] = smooth[iq] * bins["weight"][sel]
    return out


def load_xray(path, *, crystal_mask=None, substrate_margin: int = 2) -> XrayData:
    """Read ``/xray`` of a ``reduced.h5``, decide the crystal pixels, build the template.

    The substrate template pools the background frames with the scan points that saw bare
    substrate: those more than ``substrate_margin`` points from the crystal (as detected from
    the data, and from ``crystal_mask`` when given; see :func:`substrate_frames`).

    Raises
    ------
    InputError
        No X-ray data in the file, or no crystal found in the scan.
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        if "xray" not in f:
            raise InputError(
                path, "holds no X-ray data (/xray): reduce a manifest with an [xray] table"
            )
        g = f["xray"]
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in g.attrs.items()}
        counts = g["counts"][()]
        frame_excluded = g["frame_excluded"][()]
        bins = {k: g[f"bin_{k}"][()] for k in BIN_FIELDS}
        background, bg_counts, bg_exposure = None, None, 0.0
        if "background_counts" in g:
            bg_counts = g["background_counts"][()].astype(float)
            bg_exposure = float(attrs["background_exposure_s"])
            per_frame = float(attrs["count_time_s"]) / bg_exposure
            background = smooth_template(bg_counts, bins) * per_frame
    scan_shape = tuple(int(v) for v in attrs["scan_shape"])
    step = tuple(float(v) for v in attrs["step_um"])
    source = Path(str(attrs.get("source", path)))
    source = source if source.is_file() else path  # the master file the scan came from
    if frame_excluded.all():
        raise InputError(
            source, "every frame is invalid (no unsaturated, unmasked pixel): no X-ray data to fit"
        )
    try:
        detected = crystal_mask_from_data(counts, background, bins["region"], scan_shape, path=path)
    except InputError:
        if crystal_mask is None:
            raise
        detected = None  # the user's mask decides; the scan gives no substrate frames
    if crystal_mask is None:
        crystal_mask = detected
    crystal_mask = np.asarray(crystal_mask, bool)
    if crystal_mask.shape != scan_shape:  # checked before combining: numpy would broadcast
        raise InputError(
            path, f"crystal mask has shape {crystal_mask.shape}, the scan {scan_shape}"
        )
    crystal_mask = crystal_mask & ~frame_excluded.reshape(scan_shape)
    if not crystal_mask.any():
        raise InputError(
            source, "no crystal in the scan: no scan point shows SAXS peaks above the background"
        )
    substrate = np.zeros(counts.shape[0], bool)
    if detected is not None:
        substrate = substrate_frames(detected | crystal_mask, frame_excluded, substrate_margin)
    if substrate.any():
        # The template from every bare-substrate exposure: background frames + scan points off
        # the crystal (often hundreds: their shared template noise falls by √ of the exposure).
        pooled = counts[substrate].sum(axis=0, dtype=np.float64)
        if bg_counts is not None:
            pooled += bg_counts
        exposure = bg_exposure + substrate.sum() * float(attrs["count_time_s"])
        background = smooth_template(pooled, bins) * float(attrs["count_time_s"]) / exposure
    return XrayData(
        path=path, counts=counts, frame_excluded=frame_excluded, bins=bins, background=background,
        scan_shape=scan_shape, step_um=step, attrs=attrs, crystal_mask=crystal_mask,
        graph=grid_graph(crystal_mask), edge_um=edge_distance_grid(crystal_mask, step),
    )  # fmt: skip
