"""Maps of the per-pixel posteriors: mean and credible-interval width side by side.

Grid modalities (X-ray scan points, FLIM image pixels) are drawn as images on their grid in
physical units (µm, from the SPEC §7 coordinates ``<m>_row, <m>_col, <m>_x_um, <m>_y_um``),
pixels outside the crystal blank and the crystal's outline (the boundary of its pixels)
drawn in black; PL points, which lie anywhere, as coloured markers. The y axis points down,
as in the microscope's and the scan's images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from .style import colour_limits, new_figure, quantity

SAMPLE_DIMS = ("chain", "draw")


def draws_of(da: xr.DataArray, dim: str) -> np.ndarray:
    """(samples, n) draws of a variable on pixel dim ``dim``."""
    da = da.stack(sample=SAMPLE_DIMS).transpose("sample", dim)
    return np.asarray(da.values, float)


def mean_and_width(draws: np.ndarray, ci_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and central ``ci_prob`` interval width of (samples, n) draws."""
    lo, hi = np.quantile(draws, [0.5 - ci_prob / 2, 0.5 + ci_prob / 2], axis=0)
    return draws.mean(axis=0), hi - lo


@dataclass(frozen=True)
class Grid:
    """A modality's pixel grid in physical units.

    Attributes
    ----------
    rows, cols : (n,) grid indices of the crystal pixels.
    r0, c0 : first row and column of the drawn window (one blank pixel around the crystal).
    shape : (ny, nx) of the drawn window.
    x0, dx, y0, dy : x = x0 + col·dx, y = y0 + row·dy [µm].
    """

    rows: np.ndarray
    cols: np.ndarray
    r0: int
    c0: int
    shape: tuple[int, int]
    x0: float
    dx: float
    y0: float
    dy: float

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """imshow extent (left, right, bottom, top) [µm], y pointing down."""
        (ny, nx), r0, c0 = self.shape, self.r0, self.c0
        left, right = self.x0 + (c0 - 0.5) * self.dx, self.x0 + (c0 + nx - 0.5) * self.dx
        top, bottom = self.y0 + (r0 - 0.5) * self.dy, self.y0 + (r0 + ny - 0.5) * self.dy
        return left, right, bottom, top

    def image(self, values: np.ndarray) -> np.ndarray:
        """Pixel values on the window, NaN outside the crystal."""
        img = np.full(self.shape, np.nan)
        img[self.rows - self.r0, self.cols - self.c0] = values
        return img

    def outline(self) -> np.ndarray:
        """(k, 2, 2) segments [µm] of the boundary between crystal and other pixels."""
        inside = set(zip(self.rows.tolist(), self.cols.tolist(), strict=True))
        segs = []
        for r, c in inside:
            xl, xr_ = self.x0 + (c - 0.5) * self.dx, self.x0 + (c + 0.5) * self.dx
            yt, yb = self.y0 + (r - 0.5) * self.dy, self.y0 + (r + 0.5) * self.dy
            if (r - 1, c) not in inside:
                segs.append([(xl, yt), (xr_, yt)])
            if (r + 1, c) not in inside:
                segs.append([(xl, yb), (xr_, yb)])
            if (r, c - 1) not in inside:
                segs.append([(xl, yt), (xl, yb)])
            if (r, c + 1) not in inside:
                segs.append([(xr_, yt), (xr_, yb)])
        return np.array(segs, float).reshape(-1, 2, 2)


def _axis_scale(index: np.ndarray, um: np.ndarray, fallback: float) -> tuple[float, float]:
    """(offset, step) of um = offset + index·step, by least squares."""
    if np.unique(index).size < 2:
        return float(np.mean(um - index * fallback)), fallback
    step, offset = np.polyfit(index.astype(float), um.astype(float), 1)
    return float(offset), float(step)


def pixel_grid(ds: xr.Dataset | xr.DataArray, prefix: str) -> Grid:
    """The :class:`Grid` of modality ``prefix`` (``xray`` or ``flim``) from its coordinates."""
    rows = np.asarray(ds[f"{prefix}_row"].values, int)
    cols = np.asarray(ds[f"{prefix}_col"].values, int)
    x = ds[f"{prefix}_x_um"].values if f"{prefix}_x_um" in ds.coords else cols.astype(float)
    y = ds[f"{prefix}_y_um"].values if f"{prefix}_y_um" in ds.coords else rows.astype(float)
    x0, dx = _axis_scale(cols, x, 1.0)
    y0, dy = _axis_scale(rows, y, dx)
    if np.unique(cols).size < 2:
        x0, dx = _axis_scale(cols, x, dy)
    r0, c0 = int(rows.min()) - 1, int(cols.min()) - 1
    shape = (int(rows.max()) - r0 + 2, int(cols.max()) - c0 + 2)
    return Grid(rows, cols, r0, c0, shape, x0, dx, y0, dy)


def has_grid(ds: xr.Dataset, prefix: str) -> bool:
    """Whether ``ds`` carries the row and column coordinates of modality ``prefix``."""
    return f"{prefix}_row" in ds.coords and f"{prefix}_col" in ds.coords


def _panels(q, mean, width, ci_prob):
    """(values, title, signed, colour map) of the mean and interval-width panels of a map."""
    return zip(
        (mean, width),
        _panel_titles(ci_prob),
        (q.signed, False),
        ("RdBu_r" if q.signed else "viridis", "cividis"),
        strict=True,
    )


def _finish_panel(fig, ax, artist, q, name, title, *, is_mean):
    """Equal aspect, title, x label [µm] and the colour bar (the quantity, or its width)."""
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("x [µm]")
    unit = f" [{q.unit}]" if q.unit else ""
    label = q.label(name) if is_mean else f"width of {q.symbol}{unit}"
    fig.colorbar(artist, ax=ax, label=label, shrink=0.9)


def _panel_titles(ci_prob: float) -> tuple[str, str]:
    return "posterior mean", f"{round(100 * ci_prob)} % interval width"


def grid_map_figure(
    post: xr.Dataset, name: str, dim: str, prefix: str, ci_prob: float = 0.9
) -> Figure:
    """Posterior mean and interval width of ``name`` on its pixel grid, side by side.

    Parameters
    ----------
    post
        The posterior Dataset with the SPEC §7 coordinates of ``dim``.
    name
        Variable on ``dim`` (e.g. ``"a_mean"``).
    dim, prefix
        Pixel dim and coordinate prefix (``"xray_pixel"``, ``"xray"``).
    ci_prob
        Probability of the central credible interval [1].

    Returns
    -------
    matplotlib.figure.Figure
        Two image axes (x, y [µm]), each with a colour bar labelled with the unit.
    """
    q = quantity(name)
    grid = pixel_grid(post, prefix)
    mean, width = mean_and_width(draws_of(post[name], dim), ci_prob)
    (ny, nx) = grid.shape
    aspect = (ny * abs(grid.dy)) / max(nx * abs(grid.dx), 1e-9)
    fig = new_figure(8.0, min(max(3.6 * aspect + 0.9, 2.6), 7.0))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    segs = grid.outline()
    for ax, (values, title, signed, cmap) in zip(axes, _panels(q, mean, width, ci_prob),
                                                 strict=True):  # fmt: skip
        vmin, vmax = colour_limits(values, signed)
        im = ax.imshow(
            grid.image(values),
            origin="upper",
            extent=grid.extent,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            interpolation="nearest",
        )
        ax.add_collection(LineCollection(segs, colors="k", linewidths=1.0))
        _finish_panel(fig, ax, im, q, name, title, is_mean=values is mean)
    axes[0].set_ylabel("y [µm]")
    fig.suptitle(q.title(name))
    return fig


def point_map_figure(
    post: xr.Dataset,
    name: str,
    dim: str = "pl_point",
    prefix: str = "pl",
    ci_prob: float = 0.9,
    outline_um: np.ndarray | None = None,
) -> Figure:
    """Posterior mean and interval width of ``name`` at irregular points (PL), side by side.

    Parameters
    ----------
    post
        Posterior Dataset with ``<prefix>_x_um, <prefix>_y_um`` on ``dim``.
    name
        Variable on ``dim`` (e.g. ``"blueshift"``).
    ci_prob
        Probability of the central credible interval [1].
    outline_um
        Optional (M, 2) crystal outline polygon [µm], drawn in black.

    Returns
    -------
    matplotlib.figure.Figure
        Two scatter axes (x, y [µm]) with colour bars labelled with the unit.
    """
    q = quantity(name)
    x, y = post[f"{prefix}_x_um"].values, post[f"{prefix}_y_um"].values
    mean, width = mean_and_width(draws_of(post[name], dim), ci_prob)
    span_x, span_y = np.ptp(x) or 1.0, np.ptp(y) or 1.0
    fig = new_figure(8.0, min(max(3.6 * span_y / span_x + 0.9, 2.6), 7.0))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    size = 2000.0 / max(len(x), 20)
    for ax, (values, title, signed, cmap) in zip(axes, _panels(q, mean, width, ci_prob),
                                                 strict=True):  # fmt: skip
        vmin, vmax = colour_limits(values, signed)
        sc = ax.scatter(
            x,
            y,
            c=values,
            s=size,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            edgecolors="0.3",
            linewidths=0.4,
        )
        if outline_um is not None and len(outline_um) > 2:
            poly = np.vstack([outline_um, outline_um[:1]])
            ax.plot(poly[:, 0], poly[:, 1], color="k", lw=1.0)
        _finish_panel(fig, ax, sc, q, name, title, is_mean=values is mean)
    axes[0].set_ylabel("y [µm]")
    if not axes[0].yaxis_inverted():
        axes[0].invert_yaxis()
    fig.suptitle(q.title(name))
    return fig


def map_variables(post: xr.Dataset, names, dim: str) -> list[str]:
    """Those of ``names`` present in ``post`` with exactly the pixel dim (plus chain, draw)."""
    return [n for n in names if n in post and set(post[n].dims) == {*SAMPLE_DIMS, dim}]
