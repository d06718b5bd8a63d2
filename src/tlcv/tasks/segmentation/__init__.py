"""Semantic segmentation: a class per pixel, from images/ + masks/ folders or an image,mask CSV
(an encoder from the backbone registry + a U-Net / FPN / LR-ASPP decoder)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ...registry import Registry, import_module_later
from .. import TASKS, Task
from .options import SegmentationOptions

# (TrainConfig, progress) -> Run, one per transfer kind; loaded on first use (they import torch)
STRATEGIES: Registry = Registry(
    "segmentation strategy", load=import_module_later(f"{__name__}.strategies")
)


@TASKS.register("segmentation")
class Segmentation(Task):
    name = "segmentation"
    description = "a class per pixel"
    run_tags = ("segmentation",)
    strategies: ClassVar[Registry] = STRATEGIES
    options = SegmentationOptions
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
    serve_engines = ("torch",)
    explain_refusal = "the mask overlays of `tlcv predict` show what each pixel became"

    def claims(self, data: str | Path) -> bool:
        from .data import is_segmentation_data

        return is_segmentation_data(data)

    def discover(self, data, strict):
        from .data import discover_segmentation

        return discover_segmentation(data, strict=strict)

    def collect(self, paths):
        from ...inference import collect_images

        return collect_images(paths)

    def evaluate(self, run, data, **options) -> dict:
        from .evaluate import evaluate_segmentation

        return evaluate_segmentation(run, data, **options)

    def predict(self, run, paths, **options) -> list[dict]:
        from .evaluate import predict_segmentation

        return predict_segmentation(run, paths, **options)

    def serve_answer(self, server, image, top_k: int) -> dict:
        from .serve import segment

        return segment(server, image)

    def serve_picture(self, server, image, target: str | None) -> bytes:
        from .serve import mask_picture

        return mask_picture(server, image)

    def export_refusal(self, run) -> str | None:
        return "the ONNX graph covers image classifiers so far; use the torch engine"

    def report_parts(self, path: Path, metrics: dict) -> tuple[list, list]:
        from .report import report_parts

        return report_parts(path, metrics)

    def prediction_rows(self, results: list[dict]) -> list[list]:
        """Per image: each class's fraction of the pixels, with the mask and overlay files."""
        rows: list[list] = [["path", "class", "fraction", "mask", "overlay", "error"]]
        for r in results:
            if "error" in r:
                rows.append([r["path"], "", "", "", "", r["error"]])
            for name, share in r.get("fractions", {}).items():
                rows.append([r["path"], name, share, r["mask"], r["overlay"], ""])
        return rows
