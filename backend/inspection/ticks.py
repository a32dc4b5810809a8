"""Tick marks for share scales (colour bars of the heatmaps): round steps of 1, 2 or 5 times a power of
ten, labelled as percentages with just enough decimals that no two read the same ("0% 1% 1% 2%" for a
scale up to 1.75 % is what rounding every tick to whole percents gave; this gives "0.0% 0.5% 1.0% 1.5%").
One rule for the interactive charts (Vega's d3 format) and the matplotlib figures (their labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TARGET_TICKS = 4  # about this many steps across the scale


@dataclass(frozen=True)
class PercentTicks:
    """Tick values (shares: 0.015 is 1.5 %) and the decimals their percentages need."""

    values: tuple[float, ...]
    decimals: int
    signed: bool = False

    @property
    def d3_format(self) -> str:
        """The d3 format Vega-Lite labels them with: ".1%", or "+.1%" when signed."""
        return f"{'+' if self.signed else ''}.{self.decimals}%"

    def label(self, value: float) -> str:
        """One value as its tick reads, as d3 writes it: "1.5%", "+0.5%" ("0.0%" for zero, never "-0.0%")."""
        percent = value * 100
        if round(percent, self.decimals) == 0:
            percent = 0.0
        return f"{percent:{'+' if self.signed and percent != 0 else ''}.{self.decimals}f}%"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.label(v) for v in self.values)


def percent_ticks(low: float, high: float, *, signed: bool = False, target: int = TARGET_TICKS) -> PercentTicks:
    """Round ticks from `low` to `high` (shares), about `target` steps apart, each a multiple of the step.

    A scale of one value (`high <= low`, e.g. a matrix of zeros) gets that one tick.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        value = low if math.isfinite(low) else 0.0
        return PercentTicks((value,), _decimals(abs(value) * 100) if value else 0, signed)
    raw = (high - low) / max(1, target)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    while True:  # a round step can leave one tick (-42 % to +42 % in steps of 50 %): take the next smaller step
        first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
        if last - first + 1 >= min(3, target + 1):
            break
        step = _smaller(step)
    values = tuple(round(k * step, 12) + 0.0 for k in range(first, last + 1))
    return PercentTicks(values, _decimals(step * 100), signed)


def _smaller(step: float) -> float:
    """The round step below `step` (0.5 -> 0.2 -> 0.1 -> 0.05)."""
    power = 10.0 ** math.floor(math.log10(step) + 1e-9)
    mantissa = round(step / power)
    return {1: 0.5, 2: 1.0, 5: 2.0}.get(mantissa, 1.0) * power


def _decimals(step_percent: float) -> int:
    """Decimals that show a step of `step_percent` points (0.5 -> 1, 0.02 -> 2, 5 -> 0)."""
    return max(0, -math.floor(math.log10(step_percent) + 1e-9))
