"""Names, units and figure conventions shared by the report's figures (SPEC §7 units table).

Every figure is a plain :class:`matplotlib.figure.Figure` (no pyplot state, so reports can be
drawn in worker threads) with constrained layout, 150 dpi and font sizes readable when the PNG
is shown at column width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

DPI = 150
FONT = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
}


@dataclass(frozen=True)
class Quantity:
    """A SPEC §7 output variable: its symbol (matplotlib mathtext), unit and meaning."""

    symbol: str
    unit: str
    meaning: str
    signed: bool = False  # values of either sign about a meaningful zero: diverging colours

    def label(self, name: str) -> str:
        """Axis or colour-bar label, e.g. ``$a_1$ [nm]``."""
        return f"{self.symbol} [{self.unit}]" if self.unit else self.symbol

    def title(self, name: str) -> str:
        """Figure title: meaning, symbol, variable name and unit."""
        unit = f" [{self.unit}]" if self.unit else ""
        return f"{self.meaning} {self.symbol} ({name}){unit}"


#: SPEC §7 variables by name.
QUANTITIES: dict[str, Quantity] = {
    "a1": Quantity("$a_1$", "nm", "SAXS lattice length"),
    "a2": Quantity("$a_2$", "nm", "SAXS lattice length"),
    "a_mean": Quantity(r"$\langle a\rangle$", "nm", "mean SAXS lattice length"),
    "a_ratio": Quantity("$a_2/a_1$", "1", "SAXS lattice aspect ratio"),
    "gamma": Quantity(r"$\gamma$", "°", "SAXS lattice angle"),
    "phi": Quantity(r"$\varphi$", "°", "SAXS lattice azimuth"),
    "psi": Quantity(r"$\psi$", "°", "atomic lattice azimuth"),
    "delta_psi": Quantity(r"$\delta\psi$", "°", "NC orientation spread (FWHM)"),
    "g_q": Quantity("$g_q$", "%", "relative atomic lattice spread"),
    "I_AL": Quantity(r"$I_\mathrm{AL}$", "counts", "WAXS peak intensity"),
    "a_AL": Quantity(r"$a_\mathrm{AL}$", "nm", "atomic lattice constant"),
    "L_nc": Quantity(r"$L_\mathrm{NC}$", "nm", "nanocrystal size"),
    "tau": Quantity(r"$\tau$", "ns", "PL lifetime"),
    "irf_shift": Quantity(r"$s_\mathrm{IRF}$", "ps", "IRF shift"),
    "E_peak": Quantity(r"$E_\mathrm{peak}$", "eV", "PL peak energy"),
    "blueshift": Quantity(r"$\Delta E$", "meV", "PL blueshift", signed=True),
}

#: Variables mapped per modality (SPEC §7 order) and each modality's pixel dim and coord prefix.
MODALITIES = {
    "xray": (
        "xray_pixel",
        (
            "a1",
            "a2",
            "a_mean",
            "a_ratio",
            "gamma",
            "phi",
            "psi",
            "delta_psi",
            "g_q",
            "I_AL",
            "a_AL",
            "L_nc",
        ),
    ),
    "flim": ("flim_pixel", ("tau",)),
    "pl": ("pl_point", ("E_peak", "blueshift")),
}
#: Scalars reported in words when present (SPEC §7 "(none)" dims).
SCALARS = ("a_AL", "L_nc", "irf_shift")
#: Units of the regression's covariates and responses (SPEC §7).
REGRESSION_UNITS = {"a_mean": "nm", "delta_psi": "°", "g_q": "%", "blueshift": "meV", "tau": "ns"}


def quantity(name: str) -> Quantity:
    """The :class:`Quantity` of ``name`` (a plain label without unit when not in SPEC §7)."""
    return QUANTITIES.get(name, Quantity(name.replace("_", r"\_"), "", name))


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of ``width`` × ``height`` [inch] at :data:`DPI`."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def colour_limits(values: np.ndarray, signed: bool) -> tuple[float, float]:
    """Colour range of ``values``: 1st-99th percentile (symmetric about 0 when signed)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [1, 99]) if v.size > 20 else (v.min(), v.max())
    if signed:
        m = max(abs(lo), abs(hi)) or 1.0
        return -m, m
    if hi <= lo:
        pad = abs(lo) * 0.01 or 1.0
        return lo - pad, hi + pad
    return float(lo), float(hi)
