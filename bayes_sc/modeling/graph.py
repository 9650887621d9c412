"""The neighbour graph of a modality's crystal pixels (or points) and its eigenbasis (SPEC §6).

Grid modalities (X-ray scan, FLIM image) use the 4-neighbour graph of the crystal pixels
(:func:`grid_graph`); PL points at irregular positions use their Delaunay triangulation with
overly long edges pruned (:func:`point_graph`).

The spatial priors are BYM2 fields (Riebler et al. 2016): a structured ICAR part scaled so
its geometric-mean marginal variance is 1, mixed with an unstructured iid part. In the
eigenbasis of the graph Laplacian Q = D - W both parts are diagonal, so a BYM2 field is
``μ + V c`` with independent ``c_k ~ N(0, σ² (ρ / (s λ_k) + 1 - ρ))`` (``λ_k = 0`` modes, one
per connected component, carry only the unstructured part: the ICAR part is sum-to-zero on
each component, exactly). This gives both parameterisations cheaply: centred (``c`` free) and
non-centred (``c = sd · z``). The constant mode is dropped from the basis: the field mean μ
carries it, so μ and the field are not confounded (a ridge NUTS would have to walk along).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NULL_TOL = 1e-9
LONG_EDGE = 2.5  # Delaunay edges longer than this many median edges are no neighbours


@dataclass(frozen=True)
class PixelGraph:
    """Crystal pixels of a grid, their 4-neighbour graph and its Laplacian eigenbasis.

    For points (:func:`point_graph`) the "grid" is one column of n points (``rows`` = point
    index, ``cols`` = 0) and ``edges`` are the pruned Delaunay edges.

    Attributes
    ----------
    mask : (ny, nx) bool, the crystal pixels.
    rows, cols : (n,) grid indices of the crystal pixels in row-major order.
    index : (ny, nx) int, pixel number or -1 outside the mask.
    edges : (m, 2) int, neighbouring pixel pairs (i < j).
    eigvals : (n - 1,) Laplacian eigenvalues of the basis vectors (zeros first: one per extra
        component).
    eigvecs : (n, n - 1) orthonormal basis: the Laplacian's eigenvectors, with the null space
        rotated so that the constant vector is left out (it is the field mean's).
    scale : BYM2 scaling factor s: geometric mean of the ICAR marginal variances.
    n_components : connected components (isolated pixels count).
    """

    mask: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    index: np.ndarray
    edges: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    scale: float
    n_components: int

    @property
    def n(self) -> int:
        return int(self.rows.size)

    def structured_variance(self, order: int = 1) -> np.ndarray:
        """Per-mode variance of the scaled structured part: 1/(s λ_k^order), 0 on null modes.

        ``order`` 1 is the ICAR field (precision Q, the graph Laplacian); 2 the smoother GMRF
        with precision Q² (its roughness penalises curvature, not slope: a thin-plate-like
        field, Rue & Held 2005 §3.4). Either is scaled (s) so that its marginal variances have
        geometric mean 1 (Sørbye & Rue 2014), so σ keeps its meaning as the field's typical
        spread whatever the order.
        """
        pos = self.eigvals > NULL_TOL
        lam = self.eigvals[pos] ** int(order)
        scale = self.scale if order == 1 else _scale(self.eigvecs[:, pos], 1.0 / lam)
        inv = np.zeros_like(self.eigvals)
        inv[pos] = 1.0 / (scale * lam)
        return inv

    def to_grid(self, values, fill=np.nan) -> np.ndarray:
        """Scatter per-pixel ``values`` (..., n) back to the grid (..., ny, nx)."""
        values = np.asarray(values)
        out = np.full(values.shape[:-1] + self.mask.shape, fill, dtype=float)
        out[..., self.rows, self.cols] = values
        return out


def grid_graph(mask) -> PixelGraph:
    """Build the 4-neighbour graph of the True cells of ``mask`` (ny, nx)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("the crystal mask is empty")
    rows, cols = np.nonzero(mask)
    index = np.full(mask.shape, -1, dtype=np.int64)
    index[rows, cols] = np.arange(rows.size)
    pairs = []
    right = mask[:, :-1] & mask[:, 1:]
    r, c = np.nonzero(right)
    pairs.append(np.column_stack([index[r, c], index[r, c + 1]]))
    down = mask[:-1, :] & mask[1:, :]
    r, c = np.nonzero(down)
    pairs.append(np.column_stack([index[r, c], index[r + 1, c]]))
    edges = np.concatenate(pairs).astype(np.int64) if pairs else np.empty((0, 2), np.int64)
    lam, V, scale, n_comp = _eigenbasis(rows.size, edges)
    return PixelGraph(mask, rows, cols, index, edges, lam, V, scale, n_comp)


def point_graph(x_um, y_um, *, long_edge: float = LONG_EDGE) -> PixelGraph:
    """The neighbour graph of points at irregular positions (PL spectra; SPEC §6).

    Edges are those of the Delaunay triangulation of (x, y), less those longer than
    ``long_edge`` × the median edge: the hull's slivers and bridges across gaps in the point
    cloud join points that are no neighbours. Pruning never isolates a point (each keeps its
    shortest edge). Collinear points (a line scan) are chained in order along the line.

    The returned :class:`PixelGraph` treats the points as a one-column grid: ``mask`` is
    (n, 1) all True, ``rows`` = point index, ``cols`` = 0, ``index`` = (n, 1) point numbers, so
    ``to_grid`` gives (..., n, 1).

    Parameters
    ----------
    x_um, y_um
        (n,) point positions [µm].
    long_edge
        Pruning threshold [median Delaunay edge lengths].
    """
    from scipy.spatial import Delaunay, QhullError

    pts = np.column_stack([np.asarray(x_um, float), np.asarray(y_um, float)])
    n = len(pts)
    if n == 0:
        raise ValueError("no points")
    if n == 1:
        edges = np.empty((0, 2), np.int64)
    else:
        try:
            if n < 3:
                raise QhullError("fewer than 3 points")
            tri = Delaunay(pts).simplices
            pairs = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [0, 2]]])
        except QhullError:  # collinear (or < 3) points: neighbours along the line
            centred = pts - pts.mean(axis=0)
            axis = np.linalg.svd(centred, full_matrices=False)[2][0]
            order = np.argsort(centred @ axis, kind="stable")
            pairs = np.column_stack([order[:-1], order[1:]])
        edges = np.unique(np.sort(pairs, axis=1), axis=0).astype(np.int64)
        length = np.hypot(*(pts[edges[:, 0]] - pts[edges[:, 1]]).T)
        keep = length <= long_edge * np.median(length)
        lonely = np.bincount(edges[keep].ravel(), minlength=n) == 0
        for p in np.nonzero(lonely)[0]:  # a point the pruning isolated keeps its shortest edge
            incident = np.nonzero((edges == p).any(axis=1))[0]
            keep[incident[np.argmin(length[incident])]] = True
        edges = edges[keep]
    lam, V, scale, n_comp = _eigenbasis(n, edges)
    rows = np.arange(n)
    return PixelGraph(np.ones((n, 1), bool), rows, np.zeros(n, np.int64), rows[:, None].copy(),
                      edges, lam, V, scale, n_comp)  # fmt: skip


def _eigenbasis(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Laplacian eigenbasis (constant mode dropped), BYM2 scale and components of a graph.

    Parameters
    ----------
    n
        Number of nodes.
    edges
        (m, 2) int node pairs (each unordered pair once).

    Returns
    -------
    eigvals, eigvecs, scale, n_components
        As in :class:`PixelGraph`.
    """
    Q = np.zeros((n, n))
    Q[edges[:, 0], edges[:, 1]] = Q[edges[:, 1], edges[:, 0]] = -1.0
    Q[np.arange(n), np.arange(n)] = -Q.sum(axis=1)
    lam, V = np.linalg.eigh(Q)
    lam[np.abs(lam) < NULL_TOL * max(1.0, lam.max())] = 0.0
    n_comp = int((lam == 0).sum())
    # Rotate the null space (one indicator per component) so that one vector is constant, and
    # drop that one: the field mean carries it.
    null = V[:, lam == 0]
    const = np.full((n, 1), 1.0 / np.sqrt(n))
    rest = null - const @ (const.T @ null)
    u, sv, _ = np.linalg.svd(rest, full_matrices=False)
    rest = u[:, sv > 1e-8][:, : n_comp - 1]
    V = np.concatenate([rest, V[:, lam > 0]], axis=1)
    lam = np.concatenate([np.zeros(rest.shape[1]), lam[lam > 0]])
    pos = lam > 0
    return lam, V, _scale(V[:, pos], 1.0 / lam[pos]), n_comp


def _scale(V_pos: np.ndarray, var_pos: np.ndarray) -> float:
    """Geometric mean of a structured field's marginal variances (the diagonal of the
    pseudo-inverse of its precision, from the non-null eigenvectors ``V_pos`` and their
    variances ``var_pos``); isolated pixels, which carry no structured part, are left out."""
    if var_pos.size == 0:
        return 1.0
    marg = (V_pos**2) @ var_pos
    connected = marg > 0
    return float(np.exp(np.mean(np.log(marg[connected]))))
