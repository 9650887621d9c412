"""Edge distance of pixels and points (SPEC §5)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def edge_distance_grid(mask, step_um):
    """Distance [µm] from each grid cell's centre to the nearest cell outside ``mask``.

    Parameters
    ----------
    mask
        Boolean (ny, nx) crystal mask.
    step_um
        Grid steps (dy, dx) [µm].

    Cells outside the mask get 0. Cells beyond the grid count as outside the crystal, so a
    crystal touching the border is padded with one outside cell before the transform.
    """
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    dist = ndimage.distance_transform_edt(padded, sampling=tuple(float(s) for s in step_um))
    return dist[1:-1, 1:-1]


def edge_distance_points(x_um, y_um, outline_um):
    """Distance [µm] from points (x, y) to the closed outline polygon ``outline_um`` (M, 2).

    Positive inside the polygon, negative outside (even-odd rule).
    """
    pts = np.stack([np.asarray(x_um, float), np.asarray(y_um, float)], axis=-1)[:, None, :]
    poly = np.asarray(outline_um, dtype=float)
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    t = np.clip(((pts - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-300), 0.0, 1.0)
    nearest = a + t[..., None] * ab
    dist = np.sqrt(((pts - nearest) ** 2).sum(-1)).min(axis=1)
    return np.where(points_in_polygon(pts[:, 0, 0], pts[:, 0, 1], poly), dist, -dist)


def points_in_polygon(x, y, poly):
    """Even-odd point-in-polygon test for points (x, y) and a polygon (M, 2)."""
    x = np.asarray(x, float)[:, None]
    y = np.asarray(y, float)[:, None]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (x < x_at)).sum(axis=1) % 2) == 1
