"""Scores per image, and the headline scores with their bootstrap intervals.

Every scored image keeps its own confusion matrix (void pixels left out), so any pooled score
(mIoU, pixel accuracy, mean class accuracy) can be recomputed on a resample of the images: the
95% interval of evaluation/bootstrap.py resamples images, not pixels, because pixels of one
image are not independent draws. The per-image counts are written to per_image.csv.

Two-class data (background + one lesion / object class, as Kvasir-SEG's polyps) is scored the
way medical segmentation papers report it: Dice and IoU of the foreground per image and their
mean over images, sensitivity and precision over all pixels, and the 95th-percentile Hausdorff
distance per image (MONAI's convention: the larger of the two directed 95th percentiles of
edge-to-edge distances, in pixels of the image's own resolution), its edges and distance
transforms from torchmetrics.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...evaluation.bootstrap import interval

FOREGROUND = 1  # in two-class data, class 1 is the lesion / object, class 0 the background
BINARY_COLUMNS = (
    ("Dice", "dice"),
    ("IoU", "iou"),
    ("sensitivity", "sensitivity"),
    ("precision", "precision"),
    ("HD95 px", "hd95"),
)


def confusion(predicted: np.ndarray, truth: np.ndarray, k: int, ignore: int) -> np.ndarray:
    """(k, k) pixel counts, truth rows x predicted columns, void pixels left out."""
    valid = truth != ignore
    cells = truth[valid].astype(np.int64) * k + predicted[valid].astype(np.int64)
    return np.bincount(cells, minlength=k * k).reshape(k, k)


def hd95(predicted: np.ndarray, truth: np.ndarray) -> float | None:
    """95th-percentile symmetric Hausdorff distance between the foreground outlines, in pixels;
    None when either mask is empty (no outline to measure from)."""
    import torch
    from torchmetrics.functional.segmentation.utils import distance_transform, mask_edges

    pred, true = torch.from_numpy(predicted), torch.from_numpy(truth)
    if not bool(pred.any()) or not bool(true.any()):
        return None
    edges_pred, edges_true = (e.bool() for e in mask_edges(pred, true))

    def directed(edges_from: torch.Tensor, edges_to: torch.Tensor) -> float:
        # distance of every pixel to the nearest edge pixel of ``edges_to`` (scipy: the torch
        # engine needs O(pixels^2) memory on a full-resolution frame)
        field = np.asarray(distance_transform((~edges_to).float(), engine="scipy"))
        return float(np.percentile(field[edges_from.numpy()], 95))

    return max(directed(edges_pred, edges_true), directed(edges_true, edges_pred))


def pooled(matrix: np.ndarray) -> dict:
    """mIoU (classes occurring), pixel accuracy and mean class accuracy of a summed confusion:
    the definitions of metrics.PixelMetrics, so an interval brackets the score it belongs to."""
    inter = np.diag(matrix).astype(float)
    truth, pred = matrix.sum(1).astype(float), matrix.sum(0).astype(float)
    union = truth + pred - inter
    occurs, labelled = union > 0, truth > 0
    return {
        "miou": float(np.mean(inter[occurs] / union[occurs])) if occurs.any() else 0.0,
        "pixel_accuracy": float(inter.sum() / truth.sum()) if truth.sum() else 0.0,
        "mean_class_accuracy": (
            float(np.mean(inter[labelled] / truth[labelled])) if labelled.any() else 0.0
        ),
    }


def foreground(matrix: np.ndarray) -> dict:
    """Dice and IoU of the foreground in one image's confusion (both masks empty: 1, a correct
    'nothing here'), and its pixel counts."""
    tp = float(matrix[FOREGROUND, FOREGROUND])
    fn = float(matrix[FOREGROUND].sum()) - tp
    fp = float(matrix[:, FOREGROUND].sum()) - tp
    if tp + fn + fp == 0:
        return {"dice": 1.0, "iou": 1.0}
    return {"dice": 2 * tp / (2 * tp + fp + fn), "iou": tp / (tp + fp + fn)}


def binary_pooled(matrices: np.ndarray) -> dict:
    """Sensitivity (recall) and precision of the foreground over every pixel scored."""
    total = matrices.sum(0)
    tp = float(total[FOREGROUND, FOREGROUND])
    truth, pred = float(total[FOREGROUND].sum()), float(total[:, FOREGROUND].sum())
    return {
        "sensitivity": tp / truth if truth else None,
        "precision": tp / pred if pred else None,
    }


class ImageScores:
    """Collects each image's confusion (and, for two classes, its Dice, IoU and HD95)."""

    def __init__(self, classes: list[str], ignore: int):
        self.classes, self.ignore = list(classes), ignore
        self.binary = len(classes) == 2
        self.paths: list[str] = []
        self.matrices: list[np.ndarray] = []
        self.rows: list[dict] = []

    def update(self, path: str, predicted: np.ndarray, truth: np.ndarray) -> None:
        k = len(self.classes)
        matrix = confusion(predicted, truth, k, self.ignore)
        self.paths.append(path)
        self.matrices.append(matrix)
        row: dict = {"path": path, "pixels": int(matrix.sum())}
        if self.binary:
            valid = truth != self.ignore
            row.update(foreground(matrix))
            row["hd95"] = hd95((predicted == FOREGROUND) & valid, (truth == FOREGROUND) & valid)
        self.rows.append(row)

    def stacked(self) -> np.ndarray:
        k = len(self.classes)
        return np.stack(self.matrices) if self.matrices else np.zeros((0, k, k), np.int64)

    def result(self, resamples: int) -> dict:
        """The two-class headline (means over images, pooled sensitivity / precision) when
        binary, and the 95% interval of every headline score (None where undefined)."""
        matrices = self.stacked()
        statistics: dict[str, Callable[[np.ndarray], float | None]] = {
            key: (lambda idx, key=key: pooled(matrices[idx].sum(0))[key])
            for key in ("miou", "pixel_accuracy", "mean_class_accuracy")
        }
        out: dict = {}
        if self.binary:
            per_image = {
                key: np.array([np.nan if r[key] is None else r[key] for r in self.rows], float)
                for key in ("dice", "iou", "hd95")
            }
            for key, values in per_image.items():
                measured = values[~np.isnan(values)]
                out[key] = float(measured.mean()) if measured.size else None
                statistics[key] = lambda idx, v=values: _nanmean(v[idx])
            out["hd95_undefined"] = int(np.isnan(per_image["hd95"]).sum())
            out.update(binary_pooled(matrices))
            for key in ("sensitivity", "precision"):
                statistics[key] = lambda idx, key=key: binary_pooled(matrices[idx])[key]
        index = np.arange(len(matrices))
        out["intervals"] = {
            key: interval((index,), stat, resamples) for key, stat in statistics.items()
        }
        return out

    def csv_rows(self) -> list[dict]:
        """per_image.csv: each image's scores, and the per-class intersection, union and truth
        pixels from which every pooled score (and its interval) can be recomputed."""
        rows = []
        for row, matrix in zip(self.rows, self.matrices, strict=True):
            inter = np.diag(matrix)
            truth, pred = matrix.sum(1), matrix.sum(0)
            out = {k: _short(v) for k, v in row.items()}
            for i, name in enumerate(self.classes):
                out[f"intersection:{name}"] = int(inter[i])
                out[f"union:{name}"] = int(truth[i] + pred[i] - inter[i])
                out[f"truth:{name}"] = int(truth[i])
            rows.append(out)
        return rows


def _nanmean(values: np.ndarray) -> float | None:
    measured = values[~np.isnan(values)]
    return float(measured.mean()) if measured.size else None


def _short(value):
    return "" if value is None else round(value, 6) if isinstance(value, float) else value
