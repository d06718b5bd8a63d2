"""Anomaly scores as MVTec AD reports them: image AUROC and F1-max, pixel AUROC, and PRO (the
area under the per-region-overlap curve up to 30% false-positive rate, normalised to 1).

Every function returns None, not a number, when its score is undefined (no defective or no
good example): callers report what is defined and say why the rest is not.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score

PRO_LIMIT = 0.3  # MVTec's integration limit on the false-positive rate


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64).ravel()))


def f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float | None, float | None]:
    """(the best F1 over all thresholds, the threshold that reaches it)."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return None, None
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1])) if len(thresholds) else 0
    return float(f1[best]), float(thresholds[best])


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """What the run's own verdicts (score > threshold) get right."""
    labels = np.asarray(labels).astype(bool)
    flagged = np.asarray(scores) > threshold
    tp, fp = int((flagged & labels).sum()), int((flagged & ~labels).sum())
    fn = int((~flagged & labels).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    goods = int((~labels).sum())
    return {
        "accuracy": float((flagged == labels).mean()) if len(labels) else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_alarm_rate": fp / goods if goods else None,
    }


def pro(masks: list[np.ndarray], maps: list[np.ndarray], limit: float = PRO_LIMIT) -> float | None:
    """Area under PRO(FPR) for FPR in [0, limit], divided by ``limit``.

    PRO(t) is the mean, over every connected defect region of every mask, of the share of that
    region's pixels scoring above t; FPR(t) the share of defect-free pixels above t. Exact:
    every distinct score is a threshold (one sort; each region pixel weighs 1 / (regions x its
    region's size), each good pixel 1 / good pixels, and cumulative sums give both curves)."""
    from skimage.measure import label

    weights_pro, weights_fpr = [], []
    regions = 0
    for mask in masks:
        labelled, count = label(np.asarray(mask) > 0, return_num=True, connectivity=2)
        if count:
            sizes = np.bincount(labelled.ravel())
            weights_pro.append(np.where(labelled > 0, 1.0 / sizes[labelled], 0.0).ravel())
        else:
            weights_pro.append(np.zeros(labelled.size))
        weights_fpr.append((labelled == 0).ravel().astype(np.float64))
        regions += count
    good_pixels = sum(float(w.sum()) for w in weights_fpr)
    if regions == 0 or good_pixels == 0:
        return None
    values = np.concatenate([np.asarray(m, dtype=np.float64).ravel() for m in maps])
    w_pro = np.concatenate(weights_pro) / regions
    w_fpr = np.concatenate(weights_fpr) / good_pixels
    order = np.argsort(-values, kind="stable")
    values, w_pro, w_fpr = values[order], w_pro[order], w_fpr[order]
    last = np.r_[values[1:] != values[:-1], True]  # the last pixel of each distinct score
    curve_pro = np.r_[0.0, np.cumsum(w_pro)[last]]
    curve_fpr = np.r_[0.0, np.cumsum(w_fpr)[last]]
    keep = curve_fpr <= limit
    x, y = curve_fpr[keep], curve_pro[keep]
    if x[-1] < limit:  # the curve between the last point inside and the first outside
        i = int(keep.sum())
        if i < len(curve_fpr):
            x0, x1, y0, y1 = curve_fpr[i - 1], curve_fpr[i], curve_pro[i - 1], curve_pro[i]
            y_end = y0 + (y1 - y0) * (limit - x0) / (x1 - x0) if x1 > x0 else y1
            x, y = np.r_[x, limit], np.r_[y, y_end]
    return float(np.trapezoid(y, x) / limit)
