"""Object detection: boxes and classes, from a box list, Pascal VOC, COCO JSON or YOLO labels
(an encoder from the backbone registry + torchvision's Faster R-CNN / RetinaNet / FCOS)."""

from __future__ import annotations

from typing import ClassVar

from .. import Task, register_task
from .options import DetectionOptions


@register_task("detection")
class Detection(Task):
    description = "boxes around objects, with their class"
    options = DetectionOptions
    budget_option = "max_images"  # --shots counts images
    budget_label = "labelled training images"
    score_metric = "map50"
    score_label = "mAP@0.5"
    history_metric = "val_map50"
    scored_splits = ("test", "val")
    score_columns = (("mAP@0.5", "map50"), ("mAP@[.5:.95]", "map"), ("recall", "recall"))
    per_class_columns = (("boxes", "boxes"), ("AP@0.5", "ap50"), ("AP@[.5:.95]", "ap"))
    head_info = "detector"
    evaluation_files = (("precision-recall", "pr_png"),)
    page_labels: ClassVar[dict] = {"answer": "Objects found", "count": True, "picture": "boxes"}
    explain_refusal = "the drawn boxes of `tlcv predict` show what was found where"

    def prediction_rows(self, results: list[dict]) -> list[list]:
        """One row per box: class, score, corners (or the input's error), drawn file."""
        rows: list[list] = [["path", "label", "score", "x1", "y1", "x2", "y2", "drawn", "error"]]
        for r in results:
            if "error" in r:
                rows.append([r["path"], "", "", "", "", "", "", "", r["error"]])
            for o in r.get("objects", []):
                rows.append([r["path"], o["label"], o["score"], *o["box"], r["drawn"], ""])
        return rows


STRATEGIES = Detection.strategies  # what strategies.py registers into
