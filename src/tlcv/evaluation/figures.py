"""Pictures of scores, drawn once for every place that shows them (`tlcv report`, the task
packages' report parts): per-class bars, confusion matrices, a classifier run's pictures.
Matplotlib (Agg) is imported on first use."""

from __future__ import annotations

import io
import json
from pathlib import Path


def png_of(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def png_bytes(array, fast: bool = False) -> bytes:
    """A uint8 (H, W) or (H, W, 3) array as PNG bytes (masks, overlays, heat maps). ``fast``:
    the lightest compression, for pictures a served page shows once (encoding at the default
    level took 24 ms of a 35 ms segmentation answer; level 1: 5 ms, a larger file)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=1 if fast else 6)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    """A data: URL of a PNG (the served page shows it without a second request)."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode()


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def per_class_bars(
    per_class: list[dict], title: str, key: str = "recall", label: str = "accuracy (recall) %"
) -> bytes:
    """A bar per class of ``key`` (classes without a value, absent from what was scored,
    are left out)."""
    plt = pyplot()
    rows = [r for r in per_class if r.get(key) is not None and r.get("n", 1)]
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(rows) + 2), 3.4))
    ax.bar(range(len(rows)), [100 * r[key] for r in rows])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["class"] for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel(label)
    ax.set_title(title)
    return png_of(fig)


def confusion_png(confusion: list[list[int]], classes: list[str], title: str) -> bytes:
    import tempfile

    from .metrics import plot_confusion

    with tempfile.TemporaryDirectory() as tmp:
        path = plot_confusion(confusion, classes, Path(tmp) / "c.png", title=title)
        return Path(path).read_bytes()


def classifier_pictures(path: Path, metrics: dict) -> list[tuple[str, bytes]]:
    """Confusion matrix and per-class accuracy of the first scored split, and the maps of
    `evaluate --explain N`: what a classifier run's section shows."""
    classes = json.loads((path / "classes.json").read_text())
    pictures = []
    scored = next((k for k in ("test", "target", "source", "val") if k in metrics), None)
    if scored and "confusion" in metrics[scored]:
        m = metrics[scored]
        pictures.append(
            (f"confusion matrix ({scored})", confusion_png(m["confusion"], classes, scored))
        )
        pictures.append((f"per-class accuracy ({scored})", per_class_bars(m["per_class"], scored)))
    for png in sorted(path.glob("eval/*/explain/*.png"))[:6]:  # evaluate --explain N
        pictures.append((f"class-activation map: {png.stem}", png.read_bytes()))
    return pictures
