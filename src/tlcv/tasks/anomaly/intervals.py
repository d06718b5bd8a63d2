"""95% intervals of the anomaly scores, images resampled (evaluation/bootstrap.py).

Image AUROC and F1-max are recomputed exactly on each resample (one score per image). Pixel
AUROC and PRO pool millions of pixels, too many to re-sort a thousand times: each image is
reduced once to histograms over shared score bins (quantiles of every scored pixel), its good
pixels and defect pixels, and the summed share of each of its defect regions above every bin
edge. A resample adds its images' histograms, and the two curves follow from cumulative sums:
the interval is that of the scores at the bins' resolution (1,000 quantile bins: within about
0.001 of the exact score, which metrics.json gives next to it).
"""

from __future__ import annotations

import numpy as np

from . import metrics as M

BINS = 1000


def image_intervals(defective: np.ndarray, scores: np.ndarray, resamples: int) -> dict:
    from ...evaluation.bootstrap import joint_intervals

    def found(idx: np.ndarray) -> dict:
        return {"image_auroc": M.auroc(defective[idx], scores[idx]),
                "image_f1_max": M.f1_max(defective[idx], scores[idx])[0]}  # fmt: skip

    return joint_intervals(len(scores), found, ("image_auroc", "image_f1_max"), resamples)


class PixelHistograms:
    """Per image: good-pixel and defect-pixel counts per score bin, and its defect regions'
    summed coverage above each bin edge (PRO's numerator) with their number."""

    def __init__(self, masks: list[np.ndarray], maps: list[np.ndarray], bins: int = BINS):
        from skimage.measure import label

        pooled = np.concatenate([np.asarray(m, np.float64).ravel() for m in maps])
        self.edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)[1:-1]))
        k = len(self.edges) + 1
        self.good, self.bad, self.cover, self.regions = [], [], [], []
        for mask, scores in zip(masks, maps, strict=True):
            which = np.searchsorted(self.edges, np.asarray(scores, np.float64).ravel(), "right")
            mask = np.asarray(mask).ravel() > 0
            self.good.append(np.bincount(which[~mask], minlength=k))
            self.bad.append(np.bincount(which[mask], minlength=k))
            labelled, count = label(mask.reshape(np.shape(scores)), return_num=True,
                                    connectivity=2)  # fmt: skip
            labelled = labelled.ravel()
            coverage = np.zeros(k)
            for region in range(1, count + 1):
                inside = which[labelled == region]
                coverage += np.bincount(inside, minlength=k) / len(inside)
            self.cover.append(coverage)
            self.regions.append(count)
        self.good, self.bad = np.array(self.good), np.array(self.bad)
        self.cover, self.regions = np.array(self.cover), np.array(self.regions)

    def scores(self, idx: np.ndarray) -> dict:
        """Pixel AUROC and PRO of the images ``idx`` (with repeats), at the bins' resolution."""
        good, bad = self.good[idx].sum(0), self.bad[idx].sum(0)
        regions = self.regions[idx].sum()
        if not good.sum() or not bad.sum():
            return {"pixel_auroc": None, "pro": None}
        below = np.cumsum(good) - good  # good pixels in lower bins
        auroc = float((bad * (below + 0.5 * good)).sum() / (bad.sum() * good.sum()))
        # above each edge, from the highest bin down: false-positive rate and mean coverage
        fpr = np.r_[0.0, np.cumsum(good[::-1]) / good.sum()]
        pro_curve = np.r_[0.0, np.cumsum(self.cover[idx].sum(0)[::-1]) / max(regions, 1)]
        return {"pixel_auroc": auroc, "pro": _area_to(fpr, pro_curve) if regions else None}


def _area_to(x: np.ndarray, y: np.ndarray, limit: float = M.PRO_LIMIT) -> float:
    """Area under y(x) (x non-decreasing, from 0) for x in [0, limit], divided by limit (PRO's
    normalisation); the segment that crosses ``limit`` is cut there."""
    inside = int((x <= limit).sum())
    xs, ys = x[:inside], y[:inside]
    if xs[-1] < limit and inside < len(x):
        x0, x1, y0, y1 = x[inside - 1], x[inside], y[inside - 1], y[inside]
        xs, ys = np.r_[xs, limit], np.r_[ys, y0 + (y1 - y0) * (limit - x0) / (x1 - x0)]
    return float(np.trapezoid(ys, xs) / limit)


def pixel_intervals(masks: list[np.ndarray], maps: list[np.ndarray], resamples: int) -> dict:
    from ...evaluation.bootstrap import joint_intervals

    if resamples <= 0 or len(masks) < 2:
        return {"pixel_auroc": None, "pro": None}
    hist = PixelHistograms(masks, maps)
    return joint_intervals(len(masks), hist.scores, ("pixel_auroc", "pro"), resamples)
