"""Information maximisation (Gomes et al. 2010; SHOT, Liang et al. 2020): entropy of the mean
target prediction minus the mean entropy. High when predictions are confident *and* spread over
the classes, so, unlike plain entropy, it penalises collapse onto a few classes."""

from __future__ import annotations

from . import ValidationData, mean_entropy, probabilities, register_validator


@register_validator("im")
def information_maximisation(data: ValidationData) -> float:
    probs = probabilities(data.target_logits)
    marginal = probs.mean(0, keepdim=True)
    return float(mean_entropy(marginal) - mean_entropy(probs))
