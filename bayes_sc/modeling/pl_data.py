"""PL data for the models: the spectra, point positions, edge distances and the point graph.

Edge distance (SPEC §5) is measured to the crystal outline ``/pl/outline_um`` where the file
has one. Without an outline the crystal is taken as the convex hull of the points grown by half
the median nearest-neighbour spacing (the outermost points sit about half a spacing inside the
crystal's edge, as a grid's boundary pixel sits one step from the nearest outside cell): a
crystal with concave facets then gets too-large edge distances near them, so give an outline
where one is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..physics import edge_distance_points
from .graph import PixelGraph, point_graph

MIN_POINTS = 3  # a spatial prior and an E_centre need a few points
INNER_QUANTILE = 0.75  # SPEC §5: E_centre from the innermost quarter of edge distances


@dataclass
class PlData:
    """PL spectra of one crystal ready for the models.

    Attributes
    ----------
    path : the reduced.h5 it came from.
    wavelength_nm : (W,) channel centres [nm].
    counts : (N, W) CCD counts per channel [counts] (float; shot + read noise, may be < 0).
    x_um, y_um : (N,) point positions [µm].
    edge_um : (N,) edge distances [µm] (negative: outside the outline).
    outline_um : (M, 2) the crystal outline [µm] used for the edge distances.
    edge_source : ``"outline"`` (from the file) or ``"hull"`` (grown convex hull of the points).
    graph : the points' Delaunay neighbour graph (:func:`.graph.point_graph`).
    """

    path: Path
    wavelength_nm: np.ndarray
    counts: np.ndarray
    x_um: np.ndarray
    y_um: np.ndarray
    edge_um: np.ndarray
    outline_um: np.ndarray
    edge_source: str
    graph: PixelGraph

    @property
    def n_points(self) -> int:
        return int(self.counts.shape[0])

    @property
    def inner(self) -> np.ndarray:
        """(N,) bool: the innermost quarter of edge distances, which defines E_centre."""
        return self.edge_um >= np.quantile(self.edge_um, INNER_QUANTILE)

    def coords(self) -> dict:
        """SPEC §7 coordinates of the ``pl_point`` dim."""
        return {"pl_x_um": self.x_um, "pl_y_um": self.y_um, "pl_edge_um": self.edge_um}


def hull_outline(x_um, y_um) -> np.ndarray:
    """Convex hull of the points grown by half the median nearest-neighbour spacing [µm], (M, 2)."""
    from scipy.spatial import ConvexHull, QhullError, cKDTree

    pts = np.column_stack([x_um, y_um])
    spacing = float(np.median(cKDTree(pts).query(pts, k=2)[0][:, 1]))
    centre = pts.mean(axis=0)
    half = 0.5 * spacing
    try:
        hull = pts[ConvexHull(pts).vertices]
    except QhullError:  # collinear points: a rectangle half a spacing around the line
        axis = np.linalg.svd(pts - centre, full_matrices=False)[2]
        t = (pts - centre) @ axis[0]
        lo, hi = t.min() - half, t.max() + half
        return centre + np.array([[lo, -half], [hi, -half], [hi, half], [lo, half]]) @ axis
    out = hull - centre  # grow each vertex outwards from the centroid by half a spacing
    return hull + half * out / np.maximum(np.hypot(*out.T), 1e-12)[:, None]


def load_pl(path, *, point_mask=None) -> PlData:
    """Read ``/pl`` of a ``reduced.h5`` (SPEC §4.1) and prepare it for the PL model.

    Parameters
    ----------
    path
        reduced.h5 with a ``/pl`` group.
    point_mask
        Optional bool mask of N entries (any shape of that size) selecting the points to fit.

    Raises
    ------
    InputError
        No ``/pl`` group, malformed datasets, NaN or infinite values, fewer than 3 points, or
        spectra that are all zero (no signal recorded).
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        if "pl" not in f:
            raise InputError(path, "holds no PL data (/pl): reduce a manifest with a [pl] table")
        g = f["pl"]
        missing = [k for k in ("wavelength_nm", "counts", "x_um", "y_um") if k not in g]
        if missing:
            raise InputError(path, f"/pl lacks the dataset(s) {', '.join(missing)}")
        lam = np.asarray(g["wavelength_nm"][()], float)
        counts = np.asarray(g["counts"][()], float)
        x = np.asarray(g["x_um"][()], float)
        y = np.asarray(g["y_um"][()], float)
        outline = np.asarray(g["outline_um"][()], float) if "outline_um" in g else None
    if lam.ndim != 1 or counts.ndim != 2 or counts.shape[1] != lam.size:
        raise InputError(path, f"/pl/counts must be (N, W) with W = {lam.size}, got {counts.shape}")
    if x.shape != (counts.shape[0],) or y.shape != (counts.shape[0],):
        raise InputError(path, f"/pl/x_um and /pl/y_um must have shape ({counts.shape[0]},)")
    for name, arr in (("counts", counts), ("wavelength_nm", lam), ("x_um", x), ("y_um", y)):
        if not np.all(np.isfinite(arr)):
            raise InputError(path, f"/pl/{name} contains NaN or infinite values")
    if lam.min() <= 0 or np.any(np.diff(lam) == 0) or np.ptp(np.sign(np.diff(lam))) != 0:
        raise InputError(path, "/pl/wavelength_nm must be positive and strictly monotonic")
    if point_mask is not None:
        point_mask = np.asarray(point_mask, bool).ravel()
        if point_mask.size != counts.shape[0]:
            raise InputError(
                path, f"point mask has {point_mask.size} entries, /pl has {counts.shape[0]} points"
            )
        counts, x, y = counts[point_mask], x[point_mask], y[point_mask]
    if counts.shape[0] < MIN_POINTS:
        raise InputError(
            path, f"/pl has {counts.shape[0]} spectra; the PL model needs at least {MIN_POINTS}"
        )
    dead = np.nonzero(~np.any(counts != 0, axis=1))[0]
    if dead.size:
        which = "all spectra" if dead.size == counts.shape[0] else f"spectra {dead.tolist()[:10]}"
        raise InputError(path, f"/pl/counts: {which} are all zero (no signal recorded)")
    if outline is not None and (outline.ndim != 2 or outline.shape[1] != 2 or len(outline) < 3):
        raise InputError(path, f"/pl/outline_um must be (M >= 3, 2), got {outline.shape}")
    source = "outline" if outline is not None else "hull"
    if outline is None:
        outline = hull_outline(x, y)
    return PlData(
        path=path, wavelength_nm=lam, counts=counts, x_um=x, y_um=y,
        edge_um=edge_distance_points(x, y, outline), outline_um=outline, edge_source=source,
        graph=point_graph(x, y),
    )  # fmt: skip
