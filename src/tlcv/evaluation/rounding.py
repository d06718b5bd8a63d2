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


def with_spread(rows: list[dict]) -> list[dict]:
    """Experiment tables as a person reads them: each mean next to its spread over seeds, one
    cell ("0.812 ± 0.013"), from the ``X`` / ``X_std`` (or ``mean`` / ``std``) columns the
    summaries keep; other numbers rounded, text left as it is."""
    shown = []
    for row in rows:
        out = {}
        for key, value in row.items():
            spread_key = "std" if key == "mean" else f"{key}_std"
            if key == "std" or (key.endswith("_std") and key[:-4] in row):
                continue  # shown with its mean
            spread = row.get(spread_key)
            if isinstance(value, float) and isinstance(spread, float):
                scale = (0.0, spread) if spread > 0 else None  # the mean to the spread's digits
                out[key] = f"{rounded(value, scale)} ± {rounded(spread, scale)}"
            else:
                out[key] = rounded(value) if isinstance(value, float) else value
        shown.append(out)
    return shown
