"""Anomaly detection: defect-free or not, and where, learnt from defect-free images only
(frozen ImageNet patch features + PatchCore or PaDiM; nothing is trained or labelled)."""

from __future__ import annotations

from typing import ClassVar

from .. import Task, register_task
from .options import AnomalyOptions


@register_task("anomaly")
class Anomaly(Task):
    description = "defective or not, and where (learnt from good images only)"
    options = AnomalyOptions
    budget_option = "max_images"  # --shots counts good training images
    budget_label = "good training images"
    score_metric = "image_auroc"
    score_label = "image AUROC"
    history_metric = "image_auroc"  # nothing is trained: no history per epoch
    scored_splits = ("test",)
    score_columns = (
        ("image AUROC", "image_auroc"),
        ("F1-max", "image_f1_max"),
        ("pixel AUROC", "pixel_auroc"),
        ("PRO", "pro"),
    )
    per_class_columns = (
        ("images", "n"),
        ("AUROC vs good", "auroc"),
        ("flagged", "flagged"),
        ("PRO", "pro"),
    )
    head_info = "method"
    evaluation_files = (("score histogram", "histogram_png"), ("panels", "panels_dir"))
    page_labels: ClassVar[dict] = {
        "answer": "Verdict (bar: score, half = the threshold)",
        "count": False,
        "picture": "anomaly map",
    }
    serve_engines = ("torch", "onnxruntime")
    explain_refusal = "the anomaly maps of `tlcv predict` show where each image departs from good"

    def export_refusal(self, run) -> str | None:
        return None

    def prediction_rows(self, results: list[dict]) -> list[list]:
        rows: list[list] = [["path", "score", "verdict", "threshold", "heatmap", "error"]]
        for r in results:
            if "error" in r:
                rows.append([r["path"], "", "", "", "", r["error"]])
            else:
                rows.append(
                    [r["path"], r["score"], r["verdict"] or "", r["threshold"], r["heatmap"], ""]
                )
        return rows


STRATEGIES = Anomaly.strategies  # what strategies.py registers into
