"""Two-class classifiers read the way a screening test is: a decision threshold chosen on the
validation split (Youden's J, or the highest threshold that keeps a target sensitivity), the
sensitivity and specificity it gives, ROC AUC, and whether the probabilities mean what they
say (expected calibration error, a reliability diagram), with temperature scaling (Guo et al.
2017) fitted on the validation split when asked. Test labels never choose anything here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ECE_BINS = 15


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def calibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / T) from softmax(logits): log-probabilities are the logits up to a
    constant per row, which the softmax cancels."""
    if temperature == 1.0:
        return probs
    return softmax(np.log(np.clip(probs, 1e-12, 1.0)), temperature)


def decide(probs: np.ndarray, classes: list[str], rule: dict | None) -> np.ndarray:
    """Class indices: the most probable class, or for a two-class run the positive class when
    its probability reaches the threshold chosen on the validation split."""
    if not len(probs):
        return np.array([], dtype=int)
    if not rule:
        return probs.argmax(1)
    positive = classes.index(rule["positive"])
    return np.where(probs[:, positive] >= rule["threshold"], positive, 1 - positive)


def decision(row: np.ndarray, classes: list[str], rule: dict | None) -> dict:
    """predict's verdict on one input of a two-class run: the class its threshold gives."""
    if not rule:
        return {}
    label = classes[int(decide(row[None], classes, rule)[0])]
    return {"decision": label, "threshold": round(float(rule["threshold"]), 6)}


def verdict(run, probs: np.ndarray, top_k: int) -> dict:
    """predict's answer for one input of a classifier (``run``: its ``info`` and ``classes``):
    the top classes; a two-class run's calibrated probabilities and its thresholded decision.
    Both engines and the server answer with it."""
    rule = run.info.get("binary")
    if rule:
        probs = calibrated(probs[None], rule["temperature"])[0]
    order = np.argsort(-probs)[: max(1, min(top_k, len(probs)))]
    top = [{"label": run.classes[int(i)], "score": round(float(probs[i]), 6)} for i in order]
    return {"top": top, **decision(probs, run.classes, rule)}


def choose_threshold(
    positive: np.ndarray,
    score: np.ndarray,
    target_sensitivity: float | None = None,
    rule: str = "youden",
) -> dict:
    """The decision threshold on ``score`` (the positive class's probability) for 0/1 labels
    ``positive``: Youden's J (max sensitivity + specificity - 1), or 0.5 (``rule="argmax"``:
    the more probable class); with ``target_sensitivity``, the highest threshold whose
    sensitivity reaches it. A Youden's J of 0 (the split cannot tell the classes apart) keeps
    0.5."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(positive, score, drop_intermediate=False)
    thresholds = np.minimum(thresholds, 1.0)  # sklearn's first threshold is inf
    if target_sensitivity is None:
        best = int(np.argmax(tpr - fpr))
        if rule == "argmax" or tpr[best] - fpr[best] <= 0:
            flagged = score >= 0.5
            return {"threshold": 0.5, "rule": "the more probable class (0.5)",
                    "validation_sensitivity": float(flagged[positive == 1].mean()),
                    "validation_specificity": float((~flagged[positive == 0]).mean())}  # fmt: skip
        rule = "Youden's J on the validation split"
    else:
        reaching = np.flatnonzero(tpr >= target_sensitivity)
        best = int(reaching[0])  # thresholds fall as tpr rises: the first is the highest
        rule = f"sensitivity >= {target_sensitivity:g} on the validation split"
    return {"threshold": float(thresholds[best]), "rule": rule,
            "validation_sensitivity": float(tpr[best]),
            "validation_specificity": float(1 - fpr[best])}  # fmt: skip


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T)."""
    from scipy.optimize import minimize_scalar

    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, int)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(z)), labels]))

    found = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> list:
    """(low, high, count, mean confidence, accuracy) per equal-width confidence bin."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append(
                (
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(inside.sum()),
                    float(confidence[inside].mean()),
                    float(correct[inside].mean()),
                )
            )
    return rows


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               bins: int = ECE_BINS) -> float:  # fmt: skip
    """Guo et al.'s ECE: the count-weighted gap between confidence and accuracy per bin."""
    confidence = probs.max(1)
    correct = (probs.argmax(1) == labels).astype(float)
    rows = calibration_bins(confidence, correct, bins)
    return float(sum(n * abs(conf - acc) for _, _, n, conf, acc in rows) / max(1, len(labels)))


def binary_scores(positive: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """ROC AUC, and sensitivity / specificity of ``score >= threshold``."""
    from sklearn.metrics import roc_auc_score

    flagged = score >= threshold
    pos, neg = positive == 1, positive == 0
    return {
        "roc_auc": float(roc_auc_score(positive, score)) if pos.any() and neg.any() else None,
        "sensitivity": float(flagged[pos].mean()) if pos.any() else None,
        "specificity": float((~flagged[neg]).mean()) if neg.any() else None,
    }


def calibrate(logits: np.ndarray, labels: np.ndarray, classes: list[str], positive: str,
              temperature: bool, target_sensitivity: float | None,
              rule: str = "youden") -> dict:  # fmt: skip
    """What a two-class run records from its validation split: the positive class, the
    temperature (1 unless asked), and the threshold on the calibrated positive probability."""
    index = classes.index(positive)
    t = fit_temperature(logits, labels) if temperature else 1.0
    probs = softmax(logits, t)
    chosen = choose_threshold((labels == index).astype(int), probs[:, index], target_sensitivity,
                              rule)  # fmt: skip
    return {"positive": positive, "temperature": t, **chosen,
            "validation_ece": expected_calibration_error(probs, labels),
            "validation_ece_uncalibrated": expected_calibration_error(softmax(logits), labels),
            "validation_images": int(len(labels))}  # fmt: skip


def plot_reliability(probs: np.ndarray, labels: np.ndarray, file: Path, title: str) -> Path:
    """Confidence against accuracy per bin; the diagonal is a calibrated model."""
    from ..io import write_bytes
    from .figures import png_of, pyplot

    plt = pyplot()
    rows = calibration_bins(probs.max(1), (probs.argmax(1) == labels).astype(float))
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", label="calibrated")
    ax.bar([(lo + hi) / 2 for lo, hi, *_ in rows], [acc for *_, acc in rows],
           width=1 / ECE_BINS, edgecolor="white", alpha=0.8, label="accuracy per bin")  # fmt: skip
    ax.plot([conf for *_, conf, _ in rows], [acc for *_, acc in rows], "o", color="#c44e52",
            label="mean confidence")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return write_bytes(file, png_of(fig))
