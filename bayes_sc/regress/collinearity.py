"""Can the data separate the covariates' effects? Design and posterior diagnostics.

⟨a⟩, δψ and g_q all change towards a crystal's edge, so as functions of edge distance they
may be nearly collinear: then the data pin down a combination of their β, not each one. We
report, per response, the covariates' correlations at the response's pixels, the condition
number of the standardised design (√ of the largest over the smallest eigenvalue of that
correlation matrix; Belsley's rule: above 30 the effects are not separable), the variance
inflation factors, and the posterior correlations of the standardised β. A plain-words
warning names the pair of covariates that cannot be separated.
"""

from __future__ import annotations

import numpy as np


def design_diagnostics(x: np.ndarray, names) -> dict:
    """Correlations, condition number and VIFs of the covariate columns ``x`` (n, C)."""
    corr = np.corrcoef(x, rowvar=False)
    eig = np.linalg.eigvalsh(corr)
    cond = float(np.sqrt(eig.max() / max(eig.min(), 1e-300)))
    try:
        vif = np.diag(np.linalg.inv(corr))
    except np.linalg.LinAlgError:
        vif = np.full(len(names), np.inf)
    return {
        "covariates": list(names),
        "correlation": corr.round(4).tolist(),
        "condition_number": cond,
        "vif": dict(zip(names, np.asarray(vif, float).round(2).tolist(), strict=True)),
    }


def posterior_correlation(beta_std_draws: np.ndarray) -> np.ndarray:
    """Correlation matrix (C, C) of the standardised β over posterior draws (draws, C)."""
    return np.corrcoef(beta_std_draws, rowvar=False)


def contraction(beta_std_draws: np.ndarray, prior_sd: float) -> np.ndarray:
    """Posterior contraction 1 − var_post/var_prior of each standardised β (C,): near 1 the
    data determine the slope, near 0 the prior does."""
    return 1.0 - np.var(beta_std_draws, axis=0) / prior_sd**2


def collinearity_warnings(response: str, design: dict, beta_corr, contr, limits: dict) -> list:
    """One plain-words warning for a response whose covariates' effects the data cannot
    separate (an empty list when they can).

    Fires when the standardised design's condition number exceeds ``max_condition_number``
    (Belsley), when two covariates' profiles correlate beyond ``max_abs_profile_correlation``
    (a variance inflation factor above ~10 for that pair alone), when two slopes' posterior
    correlation exceeds ``max_abs_beta_correlation``, or
    when a slope's posterior contraction is below ``min_contraction`` (the prior, not the data,
    sets it). Limits come from ``models/regression.toml``.
    """
    names = design["covariates"]
    corr = np.asarray(design["correlation"])
    beta_corr = np.asarray(beta_corr)
    pairs = [
        f"{names[i]} and {names[j]} (profiles correlate at {corr[i, j]:+.2f}, slopes at "
        f"{beta_corr[i, j]:+.2f})"
        for i in range(len(names))
        for j in range(i + 1, len(names))
        if abs(beta_corr[i, j]) > limits["max_abs_beta_correlation"]
        or abs(corr[i, j]) > limits["max_abs_profile_correlation"]
    ]
    # contraction < 0: the posterior is wider than the prior, i.e. the data removed none of it
    weak = [
        f"{n} ({max(c, 0.0):.0%} of its prior variance removed)"
        for n, c in zip(names, contr, strict=True)
        if c < limits["min_contraction"]
    ]
    cond = design["condition_number"]
    if not pairs and not weak and cond <= limits["max_condition_number"]:
        return []
    parts = [f"{response}: the data cannot fully separate the covariates' effects"]
    if cond > limits["max_condition_number"]:
        parts.append(
            f"the covariates change together with edge distance (condition number "
            f"{min(cond, 1e6):.3g} > {limits['max_condition_number']:.0f})"
        )
    if pairs:
        parts.append("covariates whose effects trade off: " + "; ".join(pairs))
    if weak:
        parts.append("slopes set mostly by the prior: " + ", ".join(weak))
    parts.append("quote combined effects (or the law's prediction) rather than each beta alone")
    return [". ".join(parts[:1]) + ": " + "; ".join(parts[1:])]
