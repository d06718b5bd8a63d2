"""Deep embedded validation (You et al. 2019): the source validation loss re-weighted towards
the target. A domain classifier on the bottleneck features estimates the density ratio
w(x) = p_target(x) / p_source(x) for each held-out source image (2-fold cross-fitted so no
image is weighted by a classifier that saw it); the risk is mean(w * loss) corrected by the
control variate eta * (mean(w) - 1) that lowers its variance. Returns minus the risk."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from . import ValidationData, register_validator

MAX_TARGET = 3000


def density_ratios(source: np.ndarray, target: np.ndarray, seed: int) -> np.ndarray:
    """w(x) for each source row: p(target | x) / p(source | x), scaled by the domain sizes."""
    rng = np.random.default_rng(seed)
    if len(target) > MAX_TARGET:
        target = target[rng.choice(len(target), MAX_TARGET, replace=False)]
    x = np.concatenate([source, target])
    domain = np.r_[np.zeros(len(source)), np.ones(len(target))]
    weights = np.empty(len(source))
    folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    for fit_rows, score_rows in folds.split(x, domain):
        scaler = StandardScaler().fit(x[fit_rows])
        clf = LogisticRegression(C=1.0, max_iter=500, class_weight="balanced")
        clf.fit(scaler.transform(x[fit_rows]), domain[fit_rows])
        mine = score_rows[score_rows < len(source)]
        p_target = clf.predict_proba(scaler.transform(x[mine]))[:, 1]
        weights[mine] = p_target / np.clip(1 - p_target, 1e-6, None)
    return weights  # balanced classes: the odds estimate p_target(x) / p_source(x)


@register_validator("dev")
def deep_embedded_validation(data: ValidationData) -> float:
    if len(data.source_labels) < 4:
        raise ValueError("DEV needs held-out source images")
    losses = F.cross_entropy(
        data.source_logits.double(), data.source_labels, reduction="none"
    ).numpy()
    w = density_ratios(
        data.source_features.double().numpy(), data.target_features.double().numpy(), data.seed
    )
    weighted = w * losses
    var_w = np.var(w, ddof=1)
    eta = -np.cov(weighted, w)[0, 1] / var_w if var_w > 1e-12 else 0.0
    return -float(weighted.mean() + eta * w.mean() - eta)
