"""Numbers a person reads, rounded to what they can support: three significant digits, or the
precision of the score's own confidence interval (two significant digits of its width: an
interval 0.04 wide makes a fourth decimal noise). Files keep full precision."""

from __future__ import annotations

import math


def decimals_for(value: float, interval: list[float] | tuple[float, float] | None = None) -> int:
    """Decimal places to print ``value`` with."""
    if interval is not None:
        width = abs(float(interval[1]) - float(interval[0]))
        if width > 0 and math.isfinite(width):
            return max(0, 1 - math.floor(math.log10(width)))
    if value == 0 or not math.isfinite(value) or abs(value) >= 100:
        return 0
    return max(0, 2 - math.floor(math.log10(abs(value))))


def rounded(value: float | int | None, interval=None) -> str:
    """``value`` as text at the precision it supports; integers stay whole, None reads '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool | int):
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{decimals_for(value, interval)}f}"
