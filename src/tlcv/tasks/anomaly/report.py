"""An anomaly run's part of `tlcv report`: the table per defect kind, the score histogram and
image | map | truth panels (of the run and of its evaluations)."""

from __future__ import annotations

from pathlib import Path


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def report_parts(path: Path, metrics: dict) -> tuple[list, list]:
    tables, pictures = [], []
    test = metrics.get("test")
    if isinstance(test, dict) and test.get("per_class"):
        rows = [
            {"kind": r["class"], "images": r["n"], "AUROC vs good": _cell(r.get("auroc")),
             "flagged": _cell(r.get("flagged")), "PRO": _cell(r.get("pro")),
             "mean score": _cell(r.get("mean_score"))}
            for r in test["per_class"]
        ]  # fmt: skip
        tables.append(("test images by kind", rows))
    for name in [path / "histogram.png", *sorted(path.glob("eval/*/histogram.png"))]:
        if name.is_file():
            pictures.append((f"image scores, good vs defective: {name.parent.name}",
                             name.read_bytes()))  # fmt: skip
    panels = sorted(path.glob("panels/*.png")) + sorted(path.glob("eval/*/panels/*.png"))
    for png in panels[:6]:
        pictures.append((f"image | anomaly map | truth: {png.stem}", png.read_bytes()))
    return tables, pictures
