"""A detection run's part of `tlcv report`: AP per class, the precision-recall plots and
drawn boxes of its evaluations."""

from __future__ import annotations

from pathlib import Path


def report_parts(path: Path, metrics: dict) -> tuple[list, list]:
    tables = []
    scored = next((k for k in ("test", "val") if k in metrics), None)
    if scored:
        tables.append((f"AP per class ({scored})", metrics[scored]["per_class"]))
    drawn = [*sorted(path.glob("eval/*/pr_curve.png")), *sorted(path.glob("eval/*/drawn/*.png"))]
    return tables, [(png.parent.name + ": " + png.stem, png.read_bytes()) for png in drawn[:6]]
