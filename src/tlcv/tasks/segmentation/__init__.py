"""Semantic segmentation: a class per pixel, from images/ + masks/ folders or an image,mask CSV
(an encoder from the backbone registry + a U-Net / FPN / LR-ASPP decoder)."""

from __future__ import annotations

from typing import ClassVar

from .. import Task, register_task
from .options import SegmentationOptions


@register_task("segmentation")
class Segmentation(Task):
    description = "a class per pixel"
    options = SegmentationOptions
    adapt_options = SegmentationOptions  # decoder, loss, flips, ... mean the same in adapt
    budget_option = "max_images"  # --shots counts images, not images per class
    budget_label = "labelled training images"
    score_metric = "miou"
    score_label = "mIoU"
    history_metric = "val_miou"
    scored_splits = ("test", "val")  # CamVid-style data: val is the published evaluation split
    score_columns = (
        ("mIoU", "miou"),
        ("pixel acc.", "pixel_accuracy"),
        ("mean class acc.", "mean_class_accuracy"),
    )
    per_class_columns = (("pixels", "pixels"), ("IoU", "iou"), ("accuracy", "accuracy"))
    head_info = "decoder"
    evaluation_files = (("overlays", "overlays_dir"), ("confusion matrix", "confusion_png"))
    page_labels: ClassVar[dict] = {"answer": "Share of the image", "count": False,
                                   "picture": "mask overlay"}  # fmt: skip
    explain_refusal = "the mask overlays of `tlcv predict` show what each pixel became"

    def prediction_rows(self, results: list[dict]) -> list[list]:
        """Per image: each class's fraction of the pixels, with the mask and overlay files."""
        rows: list[list] = [["path", "class", "fraction", "mask", "overlay", "error"]]
        for r in results:
            if "error" in r:
                rows.append([r["path"], "", "", "", "", r["error"]])
            for name, share in r.get("fractions", {}).items():
                rows.append([r["path"], name, share, r["mask"], r["overlay"], ""])
        return rows


STRATEGIES = Segmentation.strategies  # what strategies.py registers into
