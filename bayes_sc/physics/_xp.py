"""Pick the array module of the inputs, so one kernel serves NumPy, JAX and PyTensor.

The forward-physics kernels are written once against the NumPy API. The simulator calls
them with NumPy arrays, the PyMC models with PyTensor variables and JAX code with JAX
arrays; this helper returns the matching module without importing the heavy ones unless
an argument already came from them.
"""

from __future__ import annotations

import numpy as np


def array_module(*args):
    """Return ``pytensor.tensor``, ``jax.numpy`` or ``numpy`` for the given arguments."""
    for a in args:
        mod = type(a).__module__
        if mod.startswith("pytensor"):
            import pytensor.tensor as pt

            return pt
        if mod.startswith("jax") or mod.startswith("jaxlib"):
            import jax.numpy as jnp

            return jnp
    return np


def expand_last(x, xp):
    """``x[..., None]`` for NumPy/JAX/PyTensor inputs, Python scalars included."""
    if xp is np:
        return np.asarray(x, dtype=float)[..., None]
    if xp.__name__.startswith("pytensor"):
        return xp.as_tensor_variable(x)[..., None]
    return xp.asarray(x)[..., None]


def as_array(x, xp):
    """Convert ``x`` to an array of module ``xp`` (NumPy, JAX or PyTensor)."""
    if xp is np:
        return np.asarray(x, dtype=float)
    if xp.__name__.startswith("pytensor"):
        return xp.as_tensor_variable(x)
    return xp.asarray(x)
