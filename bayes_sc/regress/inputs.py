"""Reading the posteriors ``regress`` combines: covariate draws and responses per crystal.

Each ``posterior.nc`` (SPEC §7) names its crystal in the attribute ``crystal`` (the manifest's
``name``; ``fit`` writes it); posteriors of one crystal are combined, whatever model wrote them.
A crystal needs an X-ray posterior (``a_mean``, ``delta_psi``, ``g_q`` on ``xray_pixel`` with
``xray_edge_um``) and at least one response: ``tau`` on ``flim_pixel`` (``flim_edge_um``) or
``blueshift`` on ``pl_point`` (``pl_edge_um``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError

log = logging.getLogger(__name__)

from ..modeling.law import COVARIATES, RESPONSES  # noqa: E402,F401 (re-exported)

MAX_PROFILE_DRAWS = 2000  # thinned: the profile's covariance needs hundreds of draws, not all


@dataclass(frozen=True)
class Response:
    """One response of one crystal: per-pixel (per-point) value and sd at edge distances.

    ``value`` and ``sd`` [unit] summarise what each pixel's (point's) own data say: its
    maximum-likelihood estimate and standard error where the posterior file holds them
    (``summary = "likelihood"``), else its marginal posterior mean and sd (``"posterior"``).
    ``edge_um`` [µm] places it on the covariate profiles.
    """

    name: str
    unit: str
    value: np.ndarray
    sd: np.ndarray
    edge_um: np.ndarray
    source: str
    summary: str  # "likelihood" or "posterior": which of the two the values are


@dataclass
class CrystalInputs:
    """Everything ``regress`` needs from one crystal's posteriors."""

    name: str
    covariate_draws: dict[str, np.ndarray] = field(default_factory=dict)  # (draws, pixels)
    xray_edge_um: np.ndarray | None = None
    xray_source: str | None = None
    responses: dict[str, Response] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def _open(path: Path) -> xr.DataTree:
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        return xr.open_datatree(path, engine="h5netcdf")
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputError(path, f"not a readable posterior.nc (netCDF DataTree): {err}") from None


def _stacked(post: xr.Dataset, name: str) -> np.ndarray:
    """(chain·draw, ...) array of a posterior variable."""
    da = post[name]
    return da.values.reshape((-1,) + da.shape[2:])


def _edge(path: Path, post: xr.Dataset, var: str, dim: str, coord: str) -> np.ndarray:
    if dim not in post[var].dims:
        raise InputError(path, f"variable {var!r} is not on dimension {dim!r} (SPEC §7)")
    if coord not in post.coords:
        raise InputError(
            path,
            f"posterior has no edge distances ({coord!r} on {dim!r}): the regression "
            "meets modalities through edge distance; refit with bayes-sc fit",
        )
    edge = np.asarray(post[coord].values, dtype=float)
    if not np.all(np.isfinite(edge)):
        raise InputError(path, f"{coord!r} holds NaN or infinite edge distances")
    return edge


# per response: the posterior file's per-pixel ML estimate and standard error (constant_data)
ML_SUMMARY = {"tau": ("tau_ml", "tau_ml_se"), "blueshift": ("E_peak_ml", "E_peak_ml_se")}


def _response_summary(path, tree, post, resp):
    """(value, sd, kind) of response ``resp`` per pixel/point (see :class:`Response`).

    The regression brings its own prior for the response field (the law plus scatter σ), so it
    needs what the data say about each pixel alone. The posterior's marginals already borrowed
    from the neighbours through the spatial prior: their means are smoothed, which removes the
    real pixel-to-pixel scatter (σ → 0) and makes neighbouring "measurements" dependent, so
    β's intervals from them come out too narrow. The per-pixel ML summaries ``fit`` stores in
    ``constant_data`` are independent across pixels; posteriors without them fall back to the
    marginals, with a warning.
    """
    const = tree["constant_data"].to_dataset() if "constant_data" in tree.children else {}
    est, se = ML_SUMMARY[resp]
    if est in const and se in const:
        value = np.asarray(const[est].values, float)
        sd = np.asarray(const[se].values, float)
        if resp == "blueshift":  # on the posterior's own centre: blueshift = 1000 (E - E_centre)
            centre = float((post["E_peak"] - post["blueshift"] / 1000.0).mean())
            value, sd = 1000.0 * (value - centre), 1000.0 * sd
        return value, sd, "likelihood"
    log.warning(
        "%s: no per-pixel likelihood summary (%s, %s) for %s: using its posterior means and sds, "
        "which the spatial prior has smoothed, so the slopes' intervals may be too narrow "
        "(refit with this version of bayes-sc)", path, est, se, resp,
    )  # fmt: skip
    draws = _stacked(post, resp)
    # Blueshift is E_peak minus a per-draw centre shared by all points: that shared part moves
    # every point together and the intercept absorbs it, so each point's own uncertainty is
    # that of its E_peak.
    sd = (
        1000.0 * _stacked(post, "E_peak").std(0)
        if resp == "blueshift" and "E_peak" in post
        else draws.std(0)
    )
    return draws.mean(0), sd, "posterior"


def read_posterior(path, crystals: dict[str, CrystalInputs]) -> None:
    """Add what ``path`` holds (covariates, responses) to its crystal in ``crystals``."""
    path = Path(path)
    tree = _open(path)
    if "posterior" not in tree.children:
        raise InputError(path, "no 'posterior' group: not a bayes-sc posterior.nc")
    post = tree["posterior"].to_dataset()
    name = str(tree.attrs.get("crystal", "crystal"))
    cry = crystals.setdefault(name, CrystalInputs(name))
    found = []
    if all(c in post for c in COVARIATES):
        if cry.xray_source is not None:
            raise InputError(
                path,
                f"crystal {name!r} already has an X-ray posterior "
                f"({cry.xray_source}); give one X-ray posterior per crystal",
            )
        edge = _edge(path, post, "a_mean", "xray_pixel", "xray_edge_um")
        n_total = post.sizes["chain"] * post.sizes["draw"]
        step = max(1, -(-n_total // MAX_PROFILE_DRAWS))
        for c in COVARIATES:
            cry.covariate_draws[c] = _stacked(post, c)[::step]
        cry.xray_edge_um, cry.xray_source = edge, str(path)
        found.append("covariates a_mean, delta_psi, g_q")
    for resp, (dim, coord, unit) in RESPONSES.items():
        if resp not in post:
            continue
        if resp in cry.responses:
            raise InputError(
                path,
                f"crystal {name!r} already has a {resp} posterior ({cry.responses[resp].source})",
            )
        edge = _edge(path, post, resp, dim, coord)
        value, sd, kind = _response_summary(path, tree, post, resp)
        keep = np.isfinite(value) & np.isfinite(sd) & (sd > 0)
        if not keep.any():
            raise InputError(path, f"no {resp} value with a finite standard error")
        cry.responses[resp] = Response(resp, unit, value[keep], sd[keep], edge[keep], str(path),
                                       kind)  # fmt: skip
        found.append(resp)
    if not found:
        raise InputError(
            path,
            "holds neither the X-ray covariates (a_mean, delta_psi, g_q) nor a response "
            "(tau, blueshift)",
        )
    cry.sources.append(str(path))
    log.info("%s: crystal %r, %s", path, name, ", ".join(found))


def read_posteriors(paths) -> list[CrystalInputs]:
    """Read every posterior and group them by crystal; check each crystal is complete."""
    crystals: dict[str, CrystalInputs] = {}
    for p in paths:
        read_posterior(p, crystals)
    for cry in crystals.values():
        where = ", ".join(cry.sources)
        if cry.xray_source is None:
            raise InputError(
                None,
                f"crystal {cry.name!r} ({where}) has no X-ray posterior "
                "(a_mean, delta_psi, g_q): nothing to regress on",
            )
        if not cry.responses:
            raise InputError(
                None,
                f"crystal {cry.name!r} ({where}) has no response posterior "
                "(tau from --model flim, blueshift from --model pl)",
            )
    return list(crystals.values())
