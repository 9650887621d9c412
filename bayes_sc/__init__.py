"""bayes_sc: Bayesian analysis of nanocrystal supercrystals (X-ray nanodiffraction, FLIM, PL)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayes_sc")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
