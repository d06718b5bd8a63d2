"""95% bootstrap confidence intervals of `tlcv evaluate`'s headline scores.

On 98 test images a score of 0.85 and one of 0.82 may not differ at all; the interval says how
far a score would move on another sample of the same kind. The items scored (images, clips)
are resampled with replacement and the score recomputed on each resample (scipy.stats.bootstrap,
percentile method, paired columns, a fixed seed so the interval is reproducible). The columns
are what evaluate writes per item (predictions.csv), so anyone can recompute it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DEFAULT_RESAMPLES = 1000
LEVEL = 0.95
SEED = 0


def interval(
    columns: tuple[np.ndarray, ...],
    statistic: Callable[..., float],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = SEED,
) -> list[float] | None:
    """[low, high] of ``statistic(*columns)`` over ``resamples`` paired resamples of the rows;
    None when turned off (0), with fewer than 2 items, or when the score is undefined (the
    statistic may return None on a resample: no interval then)."""
    import warnings

    from scipy.stats import DegenerateDataWarning, bootstrap

    if resamples <= 0 or len(columns[0]) < 2:
        return None
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)  # all resamples equal: [x, x]
        found = bootstrap(columns, _nan_for_none(statistic), n_resamples=int(resamples),
                          paired=True,
                          vectorized=False, confidence_level=LEVEL, method="percentile",
                          random_state=np.random.default_rng(seed))  # fmt: skip
    low, high = found.confidence_interval
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [float(low), float(high)]


def _nan_for_none(statistic: Callable) -> Callable:
    def score(*columns) -> float:
        value = statistic(*columns)
        return np.nan if value is None else value

    return score


def describe(resamples: int) -> dict:
    """What metrics.json records next to the intervals."""
    return {"resamples": int(resamples), "level": LEVEL, "seed": SEED,
            "method": "percentile bootstrap, items resampled with replacement "
                      "(scipy.stats.bootstrap)"}  # fmt: skip


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """Mean recall over the classes present in the (resampled) truth, as scikit-learn's."""

    def score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        cm = _confusion(y_true, y_pred, k)
        support = cm.sum(1)
        present = support > 0
        return float(np.mean(np.diag(cm)[present] / support[present]))

    return score


def macro_f1(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    """F1 averaged over the classes present in the (resampled) truth, as evaluate's macro-F1
    (scikit-learn's f1_score over those labels, zero_division=0)."""

    def score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        cm = _confusion(y_true, y_pred, k)
        present = cm.sum(1) > 0
        f1 = 2 * np.diag(cm)[present] / (cm.sum(0) + cm.sum(1))[present]
        return float(f1.mean())

    return score


def classification_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, k: int, resamples: int = DEFAULT_RESAMPLES
) -> dict[str, list[float] | None]:
    """Intervals of accuracy, balanced accuracy and macro-F1 (the classifier's headline)."""
    columns = (np.asarray(y_true, int), np.asarray(y_pred, int))
    return {
        "accuracy": interval(columns, accuracy, resamples),
        "balanced_accuracy": interval(columns, balanced_accuracy(k), resamples),
        "macro_f1": interval(columns, macro_f1(k), resamples),
    }


def joint_intervals(
    n: int,
    scores: Callable[[np.ndarray], dict[str, float | None]],
    keys: tuple[str, ...],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = SEED,
) -> dict[str, list[float] | None]:
    """Percentile intervals of several scores that come out of one costly computation (a
    detector's COCO evaluation gives mAP@0.5, mAP and recall at once): each resample of the
    ``n`` items is scored once, by ``scores(indices)``. The same percentile bootstrap as
    ``interval``, with the resample indices drawn here."""
    if resamples <= 0 or n < 2:
        return {key: None for key in keys}
    rng = np.random.default_rng(seed)
    draws = {key: [] for key in keys}
    for _ in range(int(resamples)):
        found = scores(rng.integers(0, n, n))
        for key in keys:
            value = found.get(key)
            draws[key].append(np.nan if value is None else float(value))
    out: dict[str, list[float] | None] = {}
    for key, values in draws.items():
        values = np.asarray(values)
        if np.isnan(values).any():
            out[key] = None  # undefined on some resample (e.g. no defective image drawn)
        else:
            low, high = np.percentile(values, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
            out[key] = [float(low), float(high)]
    return out
