"""Did adaptation make things worse? A label-free check of the target predictions.

Adaptation can fail silently: aligned target features may collapse onto one class while the
held-out source accuracy, the honest selection signal, stays high. Without target labels the
symptoms are still visible: the predicted-class histogram drifts far from the source class
prior, far further than the source-only model's does, and the adapted model stops agreeing
with the source-only model. The opposite drift is a symptom too: when the target's classes are
mixed differently from the source's (label shift), aligning the domains pulls the target
predictions towards the source's class mix, moving target images into the wrong classes
(Zhao et al. 2019); the source-only model's predictions show the target's own mix. A model
that is only a few points worse leaves no such trace; the arbiter (arbiter.py) asks who is
right where the two models disagree. ``check`` measures those symptoms; ``verdict`` says
whether they add up to "probably hurt". Target labels are never read here.
"""

from __future__ import annotations

import numpy as np

from .arbiter import arbitrate

EPS = 1e-6

# When the check fires (chosen from the Office-31 and digits measurements in docs/benchmarks.md):
# the adapted model's predicted-class histogram is this much further (KL, nats) from the source
# prior than the source-only model's, or this much closer to it (label shift, the same margin) ...
KL_MARGIN = 0.5
# ... or one class takes at least this share of the target, this many times its source share,
# while the source-only model gives it less than half of that.
COLLAPSE_SHARE = 0.3
COLLAPSE_RATIO = 3.0
# ... or the arbiter's vote on the disagreements estimates more than this loss of target
# accuracy (half a point: below it, a fallback removed real gains on the Office-31 / digits
# runs) and source-only leads the vote by at least this many standard deviations of a fair
# coin (small targets: a handful of disagreements is noise; docs/benchmarks.md).
ARBITER_MARGIN = 0.005
ARBITER_LEAD_SD = 1.0


def class_histogram(pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(pred, minlength=n_classes) / max(1, len(pred))


def kl_to_prior(hist: np.ndarray, prior: np.ndarray) -> float:
    """KL(predicted histogram || source prior), in nats: 0 when they match."""
    p, q = hist + EPS, prior + EPS
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def mean_entropy(probs: np.ndarray) -> float:
    """Mean prediction entropy, divided by log(C): 0 certain, 1 uniform."""
    ent = -(probs * np.log(probs + EPS)).sum(1)
    return float(ent.mean() / np.log(probs.shape[1])) if len(probs) else 0.0


def _summary(probs: np.ndarray, prior: np.ndarray) -> dict:
    hist = class_histogram(probs.argmax(1), len(prior))
    top = int(hist.argmax())
    return {
        "histogram": [round(float(h), 4) for h in hist],
        "top_class": top,
        "top_share": float(hist[top]),
        "kl_to_source_prior": kl_to_prior(hist, prior),
        "mean_entropy": mean_entropy(probs),
        # the IM and BNM validators (confident and spread over classes): both fall when
        # predictions collapse
        "information_maximisation": validator_score("im", probs),
        "batch_nuclear_norm": validator_score("bnm", probs),
    }


def validator_score(name: str, probs: np.ndarray) -> float:
    """A target-predictions-only validator's score of these probabilities (validators/)."""
    import torch

    from .validators import VALIDATORS, ValidationData

    empty = torch.empty(0)
    logits = torch.from_numpy(np.log(probs + EPS))
    data = ValidationData(empty, empty, empty, empty, logits)
    return float(VALIDATORS.get(name)(data)) if len(probs) else 0.0


def check(
    probs: np.ndarray,
    source_labels: np.ndarray,
    n_classes: int,
    reference_probs: np.ndarray | None = None,
    features: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    prior: np.ndarray | None = None,
) -> dict:
    """Symptoms of the adapted model's target probabilities ``probs`` (N, C), against the
    source class prior and, when given, the source-only model's probabilities on the same
    target images (rows aligned). With ``features`` (the starting backbone's features of those
    target images, of labelled source images, and those images' class indices), the arbiter
    also settles the images the two models disagree on. ``prior``: the source class mix when
    it is known without labels per row (segmentation: the source masks' pixel shares)."""
    if prior is None:
        prior = class_histogram(np.asarray(source_labels, dtype=int), n_classes)
    out = {"n_target": int(len(probs)), "source_prior": [round(float(p), 4) for p in prior]}
    out["adapted"] = _summary(probs, prior)
    if reference_probs is not None:
        out["source_only"] = _summary(reference_probs, prior)
        out["agreement_with_source_only"] = float(
            np.mean(probs.argmax(1) == reference_probs.argmax(1))
        )
        if features is not None:
            out["arbiter"] = arbitrate(probs.argmax(1), reference_probs.argmax(1), *features)
    return out


def verdict(health: dict, classes: list[str], unit: str = "target images") -> list[str]:
    """Reasons to believe the adaptation hurt (empty: no alarm), in words a user can act on
    (``unit``: what a prediction is of, e.g. "target pixels")."""
    adapted, prior = health["adapted"], health["source_prior"]
    reference = health.get("source_only")
    reasons = []
    top = adapted["top_class"]
    share, source_share = adapted["top_share"], prior[top]
    ref_share = reference["histogram"][top] if reference else source_share
    if (
        share >= COLLAPSE_SHARE
        and share >= COLLAPSE_RATIO * max(source_share, EPS)
        and ref_share < share / 2
    ):
        reasons.append(
            f"target predictions collapsed: {100 * share:.0f}% of {unit} predicted "
            f"'{classes[top]}' vs {100 * source_share:.0f}% of "
            + unit.replace("target", "source")
            + (f" and {100 * ref_share:.0f}% by the source-only model" if reference else "")
        )
    if reference:
        drift = adapted["kl_to_source_prior"] - reference["kl_to_source_prior"]
        if drift >= KL_MARGIN:
            kl, kl_ref = adapted["kl_to_source_prior"], reference["kl_to_source_prior"]
            reasons.append(
                f"predicted classes drifted from the source class mix (KL {kl:.2f} vs "
                f"{kl_ref:.2f} for source-only); agreement with "
                f"source-only {100 * health['agreement_with_source_only']:.0f}%"
            )
        elif -drift >= KL_MARGIN:
            kl, kl_ref = adapted["kl_to_source_prior"], reference["kl_to_source_prior"]
            reasons.append(
                f"predicted classes were pulled towards the source class mix (KL {kl:.2f} vs "
                f"{kl_ref:.2f} for source-only): the target's classes seem mixed differently "
                "from the source's, and aligning the domains then moves target images into the "
                f"wrong classes; agreement with source-only "
                f"{100 * health['agreement_with_source_only']:.0f}%"
            )
    vote = health.get("arbiter")
    if (
        vote
        and vote["estimated_gain"] < -ARBITER_MARGIN
        and vote["source_only_lead_sd"] >= ARBITER_LEAD_SD
    ):
        reasons.append(
            f"where the adapted and the source-only model disagree ({vote['disagreements']} "
            f"target images), the nearest labelled images side with source-only "
            f"{vote['sides_with_source_only']} times and with the adapted model "
            f"{vote['sides_with_adapted']} times: an estimated "
            f"{100 * vote['estimated_gain']:+.1f} points of target accuracy"
        )
    return reasons
