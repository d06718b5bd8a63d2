"""Pixel metrics from torchmetrics, void pixels ignored: IoU per class and its mean, pixel
accuracy, accuracy per class, and the confusion matrix.

The mean IoU averages the classes that occur (in the truth or the prediction) in what was
scored: a class absent from both has no IoU, and counting it as 0 would punish a test set for
what it lacks. On CamVid's val split every class occurs, so this is the usual mIoU.
"""

from __future__ import annotations

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassJaccardIndex,
)

from .data import IGNORE


class PixelMetrics:
    """Accumulate over any number of (prediction, truth) index maps, then ``result()``.

    Scores what this process saw: no sync across a torchrun group (the run's final scoring
    happens on rank 0 alone, after the other ranks have left)."""

    def __init__(self, classes: list[str]):
        n = len(classes)
        self.classes = list(classes)
        local = {"ignore_index": IGNORE, "sync_on_compute": False}
        self.metrics = MetricCollection(
            {
                "iou": MulticlassJaccardIndex(n, average="none", **local),
                "pixel_accuracy": MulticlassAccuracy(n, average="micro", **local),
                "class_accuracy": MulticlassAccuracy(n, average="none", **local),
                "confusion": MulticlassConfusionMatrix(n, **local),
            }
        )

    def update(self, predicted: torch.Tensor, truth: torch.Tensor) -> None:
        self.metrics.update(predicted.reshape(-1).cpu(), truth.reshape(-1).cpu().long())

    def result(self) -> dict:
        out = {k: v.cpu() for k, v in self.metrics.compute().items()}
        confusion = out["confusion"].long()
        truth_pixels = confusion.sum(1)
        occurs = (truth_pixels + confusion.sum(0)) > 0
        per_class = []
        for i, name in enumerate(self.classes):
            per_class.append(
                {
                    "class": name,
                    "pixels": int(truth_pixels[i]),
                    "iou": float(out["iou"][i]) if occurs[i] else None,
                    "accuracy": float(out["class_accuracy"][i]) if truth_pixels[i] else None,
                }
            )
        ious = [r["iou"] for r in per_class if r["iou"] is not None]
        accs = [r["accuracy"] for r in per_class if r["accuracy"] is not None]
        return {
            "miou": sum(ious) / len(ious) if ious else 0.0,
            "pixel_accuracy": float(out["pixel_accuracy"]) if truth_pixels.sum() else 0.0,
            "mean_class_accuracy": sum(accs) / len(accs) if accs else 0.0,
            "pixels": int(truth_pixels.sum()),
            "per_class": per_class,
            "confusion": confusion.tolist(),
        }
