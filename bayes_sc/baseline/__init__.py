"""The paper's own pipeline, as a baseline: per-peak least squares, Friedel averaging and
per-pixel Williamson–Hall, producing the same maps as the Bayesian models."""

from .xray import baseline_xray

__all__ = ["baseline_xray"]
