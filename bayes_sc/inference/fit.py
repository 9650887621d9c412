"""``bayes-sc fit``: from a manifest or ``reduced.h5`` to ``posterior.nc`` (SPEC §7)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError
from ..io.manifest import read_manifest
from ..presets import load_preset
from ..provenance import step_provenance
from .sample import sample, write_posterior

log = logging.getLogger(__name__)
MODELS = ("xray", "flim", "pl", "joint")


def parse_crop(text: str | None):
    """``"r0:r1,c0:c1"`` → (slice, slice) of scan rows and columns, or None."""
    if text is None:
        return None
    try:
        rows, cols = text.split(",")
        r0, r1 = (int(v) for v in rows.split(":"))
        c0, c1 = (int(v) for v in cols.split(":"))
    except ValueError:
        raise InputError(
            None, f"--crop must look like r0:r1,c0:c1 (e.g. 10:16,8:14), got {text!r}"
        ) from None
    return slice(r0, r1), slice(c0, c1)


def attach_pixel_coords(tree: xr.DataTree, dim: str, coords: dict) -> xr.DataTree:
    """Add SPEC §7 pixel coordinates (``xray_row`` ...) along ``dim`` in every group that has it."""
    for name in list(tree.children):
        ds = tree[name].to_dataset()
        if dim in ds.dims:
            tree[name] = xr.DataTree(
                ds.assign_coords({k: (dim, np.asarray(v)) for k, v in coords.items()})
            )
    return tree


def add_likelihood_summary(tree: xr.DataTree, dim: str, summaries: dict) -> xr.DataTree:
    """Store per-pixel likelihood summaries in ``constant_data`` (on ``dim``).

    ``summaries`` maps a name (e.g. ``"tau_ml"``) to ``(values, unit, description)``. These are
    each pixel's own maximum-likelihood estimate and standard error, free of the spatial prior:
    a second-stage model that brings its own prior for the field (the regression's law) needs
    the data's information alone, not a posterior that already borrowed from the neighbours.
    NaN marks a pixel whose own fit failed.
    """
    const = tree["constant_data"].to_dataset() if "constant_data" in tree.children else None
    new = xr.Dataset({
        name: xr.DataArray(np.asarray(values, float), dims=(dim,),
                           attrs={"units": unit, "description": text})
        for name, (values, unit, text) in summaries.items()
    })  # fmt: skip
    tree["constant_data"] = xr.DataTree(new if const is None else const.merge(new))
    return tree


def posterior_predictive_draws(tree, model, seed, progress, max_draws: int = 200):
    """Posterior predictive of ``model``'s observed variables from at most ``max_draws``
    posterior draws (evenly thinned: a predictive check needs hundreds, not the full set)."""
    import pymc as pm

    post = tree["posterior"].to_dataset()
    step = max(1, -(-post.sizes["chain"] * post.sizes["draw"] // max_draws))
    thin = xr.DataTree.from_dict({"posterior": post.isel(draw=slice(None, None, step))})
    pp = pm.sample_posterior_predictive(thin, model=model, random_seed=seed, progressbar=progress)
    return pp["posterior_predictive"]


def read_mask(path) -> np.ndarray:
    """A crystal mask from ``.npy`` or a text grid of 0/1 (rows of the modality's grid)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        mask = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=None)
    except (ValueError, OSError) as err:
        raise InputError(path, f"not a crystal mask (.npy, or text rows of 0/1): {err}") from None
    mask = np.asarray(mask)
    if mask.ndim != 2 or not np.isin(mask, (0, 1)).all():
        raise InputError(path, "a crystal mask must be a 2-D grid of 0/1 (or booleans)")
    return mask.astype(bool)


def _reduced_path(source: Path, workdir: Path) -> tuple[Path, str, str]:
    """A reduced.h5 for ``source`` (reducing a manifest first), the material and crystal name."""
    import h5py

    if source.suffix == ".toml":
        from ..reduce import reduce_dataset

        man = read_manifest(source)
        out = workdir / "reduced.h5"
        reduce_dataset(man, out)
        return out, man.material, man.name
    try:
        with h5py.File(source, "r") as f:
            name = str(f.attrs.get("name", source.stem))
            return source, str(f.attrs.get("material", "cspbbr2cl")), name
    except OSError:
        raise InputError(source, "neither a manifest (.toml) nor a readable reduced.h5") from None


def check_prior_ranges(first: dict, preset: dict) -> None:
    """Refuse a preset whose prior ranges exclude the peaks the data show.

    The first estimates (the baseline's maps) locate the SAXS lattice and the WAXS ring; a
    crystal-median a_mean or an a_AL outside the preset's ``range`` (or no peaks found at all
    inside the regions the preset's ranges define) means the model's priors cannot reach the
    data, and a posterior would be meaningless.
    """
    checks = {
        "a_mean": float(np.nanmedian(first["a_mean"])) if np.isfinite(first["a_mean"]).any()
        else np.nan,
        "a_AL": float(first["a_AL"]),
    }  # fmt: skip
    for name, value in checks.items():
        lo, hi = preset["priors"][name].get("range", (-np.inf, np.inf))
        if not np.isfinite(value):
            raise InputError(
                preset.get("_path"), f"no {name} peaks found inside the regions its prior range "
                f"[{lo}, {hi}] defines: the preset does not fit these data",
            )  # fmt: skip
        if not lo <= value <= hi:
            raise InputError(
                preset.get("_path"), f"prior range of {name} [{lo}, {hi}] excludes the data's "
                f"peaks (first estimate {value:.4g}): the preset does not fit these data",
            )  # fmt: skip


def prepare_xray(reduced: Path, preset: dict, *, crop=None, crystal_mask=None,
                 likelihood="summary"):  # fmt: skip
    """Load one scan's X-ray data and everything its model needs.

    Returns ``(data, first, saxs, waxs, summaries)``: the crystal's data, the baseline's first
    estimates, the likelihood windows and (``likelihood == "summary"``) their usable Laplace
    summaries, else None (exact Poisson on every window bin).
    """
    from ..baseline import baseline_xray
    from ..modeling.windows import xray_windows
    from ..modeling.xray_data import load_xray

    data = load_xray(reduced, crystal_mask=crystal_mask)
    if crop is not None:
        mask = np.zeros(data.scan_shape, bool)
        mask[crop] = True
        data = load_xray(reduced, crystal_mask=data.crystal_mask & mask)
    first = baseline_xray(data, preset)
    check_prior_ranges(first, preset)
    saxs, waxs = xray_windows(data, first, preset)
    log.info(
        "X-ray model: %d crystal pixels, %d SAXS and %d WAXS window bins",
        data.graph.n,
        saxs.size,
        waxs.size,
    )
    summaries = None
    if likelihood == "summary":
        from ..modeling.summaries import xray_summaries

        summaries = xray_summaries(data, preset, saxs, waxs, first)
        for name, s in zip(("SAXS", "WAXS"), summaries, strict=True):
            log.info("%s peak windows summarised: %d of %d usable", name, s.ok.sum(), s.ok.size)
        summaries = tuple(s.usable() for s in summaries)
    elif likelihood != "exact":
        raise InputError(None, f"unknown likelihood {likelihood!r}; use summary or exact")
    elif data.graph.n > 64:
        log.warning(
            "the exact Poisson likelihood on %d pixels is slow on a CPU; consider --crop",
            data.graph.n,
        )
    return data, first, saxs, waxs, summaries


def fit_xray(
    reduced: Path, preset: dict, *, crop=None, sampler="numpyro", chains=2, draws=2000, tune=1000,
    seed=0, progress=True, posterior_predictive=False, likelihood="summary", crystal_mask=None,
    target_accept=None,
) -> xr.DataTree:  # fmt: skip
    """Sample the X-ray model of one scan (optionally a crop of it) and return the DataTree.

    ``likelihood`` is ``"summary"`` (the fast Laplace summaries of every peak window,
    :mod:`bayes_sc.modeling.summaries`) or ``"exact"`` (Poisson on every window bin).
    ``target_accept`` is NUTS's target acceptance (default: the preset's ``[xray]
    target_accept``, or ``target_accept_small_scan`` for fewer than ``small_scan_pixels``
    crystal pixels).
    """
    from ..modeling.xray import PIX, build_xray_model
    from .sample import enable_parallel_chains

    enable_parallel_chains(chains)  # before anything starts JAX (the summaries do)
    data, first, saxs, waxs, summaries = prepare_xray(
        reduced, preset, crop=crop, crystal_mask=crystal_mask, likelihood=likelihood
    )
    model = build_xray_model(data, preset, saxs, waxs, first, summaries)
    if target_accept is None:  # few pixels pin the fields' scales loosely: a funnel, small steps
        xp = preset["xray"]
        small = data.graph.n < xp["small_scan_pixels"]
        target_accept = xp["target_accept_small_scan" if small else "target_accept"]
    # thousands of windows pin some parameters to ~10⁻³ of their prior scale: start NUTS's
    # mass matrix from the curvature there, not the identity (docs/benchmarks.md)
    tree = sample(
        model, sampler=sampler, chains=chains, draws=draws, tune=tune, seed=seed,
        progress=progress, initial_mass="hessian",
        target_accept=target_accept,
    )  # fmt: skip
    if posterior_predictive:
        tree["posterior_predictive"] = posterior_predictive_draws(tree, model, seed, progress)
    tree.attrs.update(
        model="xray", n_pixels=data.graph.n, source=str(reduced), likelihood=likelihood
    )
    return attach_pixel_coords(tree, PIX, data.coords())


def fit(source, output, *, model="xray", crop=None, crystal_mask=None, flim_bin=1,
        flim_merge=None, likelihood="summary", **settings) -> Path:  # fmt: skip
    """Fit ``model`` to ``source`` (manifest or reduced.h5) and write ``output`` atomically.

    ``settings`` go to the sampler (:func:`bayes_sc.inference.sample.sample`); ``crop`` and
    ``likelihood`` apply to the X-ray model, ``flim_bin`` and ``flim_merge`` to the FLIM model,
    ``crystal_mask`` (a file, see :func:`read_mask`) to either.
    """
    source, output = Path(source), Path(output)
    for key in ("draws", "target_accept"):
        if settings.get(key) is None:  # each model's default
            settings.pop(key, None)
    if model not in MODELS:
        raise InputError(None, f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if model == "joint" and crystal_mask is not None:
        raise InputError(crystal_mask, "--crystal-mask applies to one modality; the joint model "
                         "chooses each modality's crystal from its own counts")  # fmt: skip
    if not source.exists():
        raise InputError(source, "file not found")
    from ..io.h5util import check_output
    from ..provenance import input_files

    # before minutes of sampling: never an input, a folder or a path under a file
    check_output(output, [*input_files(source), crystal_mask])
    mask = None if crystal_mask is None else read_mask(crystal_mask)
    with tempfile.TemporaryDirectory(prefix="bayes_sc_fit_") as tmp:
        reduced, material, name = _reduced_path(source, Path(tmp))
        preset = load_preset(material)
        if model == "xray":
            tree = fit_xray(reduced, preset, crop=parse_crop(crop), crystal_mask=mask,
                            likelihood=likelihood, **settings)  # fmt: skip
        elif model == "joint":
            from .fit_joint import fit_joint

            tree = fit_joint(reduced, preset, crop=parse_crop(crop), likelihood=likelihood,
                             bin_pixels=flim_bin, merge=flim_merge, **settings)  # fmt: skip
        elif model == "pl":
            from .fit_pl import fit_pl

            tree = fit_pl(reduced, preset, crystal_mask=mask, **settings)
        else:
            from .fit_flim import fit_flim

            tree = fit_flim(reduced, preset, bin_pixels=flim_bin, merge=flim_merge,
                            crystal_mask=mask, **settings)  # fmt: skip
        # The crystal's name groups posteriors of one supercrystal in ``regress``.
        tree.attrs.update(crystal=name, material=material)
        run = dict(model=model, crop=crop, crystal_mask=crystal_mask, flim_bin=flim_bin,
                   flim_merge=flim_merge, likelihood=likelihood, **settings)  # fmt: skip
        tree.attrs.update(step_provenance([source, crystal_mask], run, settings.get("seed", 0)))
    return write_posterior(tree, output)
