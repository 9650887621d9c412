"""FLIM data for the models: merged histograms of the crystal pixels, the IRF, pixel coords.

Crystal pixels are decided from the photon counts: Otsu's split of log(photons + 1) per
(binned) pixel where the image shows two clear populations (crystal on dark glass: the split
is ≥ 5 pooled sd wide), otherwise every pixel with at least ``min_photons`` photons (a sample
that fills the image, as in tissue FLIM). Either way a pixel needs ``min_photons``. Users
override it with a mask of their own (``crystal_mask``).

Two reductions keep the posterior affordable without biasing it:
- spatial binning (``bin_pixels`` = k sums k × k image pixels: Poisson sums stay Poisson) for
  images with very few photons per pixel;
- time-bin merging (``merge`` native bins per merged bin; default: merged bins of about
  ``merged_bin_ps``), exact through :func:`bayes_sc.physics.flim_binned.flim_expected_merged`,
  which keeps the IRF at its native resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..physics import edge_distance_grid
from ..physics.flim_binned import merge_bins, merged_widths
from .graph import PixelGraph, grid_graph
from .masks import otsu_split

MIN_PHOTONS = 20  # default minimum photons of a crystal pixel
MERGED_BIN_PS = 800.0  # default width of merged time bins [ps]
SEPARATION = 5.0  # Otsu split that counts as two populations [pooled sd]


@dataclass
class FlimData:
    """One FLIM image ready for the models.

    Attributes
    ----------
    path : the reduced.h5 it came from.
    counts : (n_pixels, n_merged) merged photon counts of the crystal pixels [photons].
    irf : (n_bins,) measured IRF on the native bins [counts], or None (modelled).
    bin_ns, period_ns : native bin width and laser period [ns].
    n_bins, merge : native bins per period and native bins per merged bin.
    pixel_um : (binned) pixel size [µm] (1.0 with a warning-worthy ``pixel_um_known=False``).
    photons : (ny, nx) photons per (binned) pixel, whole image.
    crystal_mask, graph, edge_um : crystal pixels, their graph, edge distances [µm].
    bin_pixels : spatial binning factor applied.
    """

    path: Path
    counts: np.ndarray
    irf: np.ndarray | None
    bin_ns: float
    period_ns: float
    n_bins: int
    merge: int
    pixel_um: float
    pixel_um_known: bool
    photons: np.ndarray
    crystal_mask: np.ndarray
    graph: PixelGraph
    edge_um: np.ndarray
    bin_pixels: int = 1

    @property
    def widths(self) -> np.ndarray:
        """Native bins in each merged bin."""
        return merged_widths(self.n_bins, self.merge)

    def coords(self) -> dict:
        """SPEC §7 coordinates of the ``flim_pixel`` dim."""
        g = self.graph
        size = self.pixel_um
        return {
            "flim_row": g.rows, "flim_col": g.cols, "flim_x_um": (g.cols + 0.5) * size,
            "flim_y_um": (g.rows + 0.5) * size, "flim_edge_um": self.edge_um[g.rows, g.cols],
        }  # fmt: skip


def _source(group: h5py.Group, reduced: Path) -> Path:
    """The file a reduced group came from (its ``source`` attribute) when it still exists, else
    the reduced file: errors about the data name the file the user gave (``fit`` on a manifest
    reduces into a temporary folder first)."""
    source = group.attrs.get("source")
    source = Path(source.decode() if isinstance(source, bytes) else str(source)) if source else None
    return source if source is not None and source.is_file() else reduced


def bin_image(counts: np.ndarray, k: int) -> np.ndarray:
    """Sum k × k pixel blocks of a (ny, nx, n_bins) image (incomplete edge blocks dropped)."""
    if k == 1:
        return counts
    ny, nx = counts.shape[0] // k, counts.shape[1] // k
    if ny == 0 or nx == 0:
        raise ValueError(f"spatial binning {k} is larger than the image {counts.shape[:2]}")
    c = counts[: ny * k, : nx * k].reshape(ny, k, nx, k, -1)
    return c.sum(axis=(1, 3), dtype=np.int64)


def crystal_from_photons(photons: np.ndarray, min_photons: int = MIN_PHOTONS) -> np.ndarray:
    """Crystal pixels from photons per pixel (see module docstring)."""
    enough = photons >= min_photons
    cut, separation = otsu_split(np.log1p(photons))
    if separation >= SEPARATION:
        return enough & (np.log1p(photons) > cut)
    return enough


def default_merge(n_bins: int, bin_ps: float, merged_bin_ps: float = MERGED_BIN_PS) -> int:
    """Native bins per merged bin: about ``merged_bin_ps`` wide, at least 1."""
    return int(min(n_bins, max(1, round(merged_bin_ps / bin_ps))))


def load_flim(
    path, *, crystal_mask=None, bin_pixels: int = 1, merge: int | None = None,
    min_photons: int = MIN_PHOTONS, merged_bin_ps: float = MERGED_BIN_PS,
) -> FlimData:  # fmt: skip
    """Read ``/flim`` of a ``reduced.h5``, bin, merge and decide the crystal pixels.

    Parameters
    ----------
    path
        reduced.h5 with a ``/flim`` group (SPEC §4.1).
    crystal_mask
        Optional (ny, nx) bool mask on the (binned) image overriding the automatic choice.
    bin_pixels
        Spatial binning factor k (k × k pixels summed).
    merge
        Native time bins per merged bin (default: about ``merged_bin_ps``).
    min_photons
        Fewest photons a crystal pixel may have.

    Raises
    ------
    InputError
        No FLIM data, an IRF of another length, a mask of the wrong shape, or no crystal pixel.
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        if "flim" not in f:
            raise InputError(
                path, "holds no FLIM data (/flim): reduce a manifest with a [flim] table"
            )
        g = f["flim"]
        counts = g["counts"][()]
        irf = g["irf"][()].astype(float) if "irf" in g else None
        bin_ps = float(g.attrs["bin_ps"])
        period_ns = float(g.attrs["period_ns"])
        pixel_um = float(g.attrs.get("pixel_um", np.nan))
        irf_source = str(g.attrs.get("irf_source", "irf"))
        source = _source(g, path)
    n_bins = counts.shape[-1]
    if irf is not None:
        if irf.size == n_bins + 1:  # decoders can report one bin more (STACK_NOTES)
            irf = irf[:n_bins]
        elif irf.size == n_bins - 1:
            irf = np.append(irf, 0.0)
        if irf.size != n_bins:
            raise InputError(
                irf_source, f"IRF has {irf.size} bins, the FLIM image {n_bins} of the same width"
            )
    if bin_pixels < 1:
        raise InputError(None, f"spatial binning must be a positive integer, got {bin_pixels}")
    try:
        counts = bin_image(counts, bin_pixels)
    except ValueError as err:
        raise InputError(path, str(err)) from None
    photons = counts.sum(axis=-1)
    if crystal_mask is None:
        crystal_mask = crystal_from_photons(photons, min_photons)
    crystal_mask = np.asarray(crystal_mask, bool)
    if crystal_mask.shape != photons.shape:
        raise InputError(
            path, f"crystal mask has shape {crystal_mask.shape}, the (binned) image {photons.shape}"
        )
    if not crystal_mask.any() or photons[crystal_mask].sum() == 0:
        raise InputError(
            source, f"no crystal in the FLIM image: no pixel has {min_photons} photons or more "
            f"(most in one pixel: {int(photons.max())}); try spatial binning",
        )  # fmt: skip
    merge = default_merge(n_bins, bin_ps, merged_bin_ps) if merge is None else int(merge)
    if not 1 <= merge <= n_bins:
        raise InputError(None, f"time-bin merging must be in [1, {n_bins}], got {merge}")
    known = bool(np.isfinite(pixel_um) and pixel_um > 0)
    size_um = (pixel_um if known else 1.0) * bin_pixels
    graph = grid_graph(crystal_mask)
    return FlimData(
        path=path, counts=merge_bins(counts[graph.rows, graph.cols], merge).astype(np.int64),
        irf=irf, bin_ns=bin_ps / 1000.0, period_ns=period_ns, n_bins=n_bins, merge=merge,
        pixel_um=size_um, pixel_um_known=known, photons=photons, crystal_mask=crystal_mask,
        graph=graph, edge_um=edge_distance_grid(crystal_mask, (size_um, size_um)),
        bin_pixels=bin_pixels,
    )  # fmt: skip
