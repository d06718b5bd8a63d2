"""A segmentation run's part of `tlcv report`: IoU per class and image | truth | prediction
panels (of the run and of its evaluations)."""

from __future__ import annotations

from pathlib import Path

from ...evaluation.figures import per_class_bars


def report_parts(path: Path, metrics: dict) -> tuple[list, list]:
    pictures = []
    scored = next((k for k in ("test", "val") if k in metrics), None)
    if scored:
        title = f"IoU per class ({scored})"
        bars = per_class_bars(metrics[scored]["per_class"], title, "iou", "IoU %")
        pictures.append((title, bars))
    panels = sorted(path.glob("overlays/*.png")) + sorted(path.glob("eval/*/overlays/*.png"))
    for png in panels[:6]:
        pictures.append((f"image | truth | prediction: {png.stem}", png.read_bytes()))
    return [], pictures
