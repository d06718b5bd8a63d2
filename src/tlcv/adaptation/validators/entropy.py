"""Negative mean entropy of the target predictions (Morerio et al. 2018): confident target
predictions score high. Blind to collapse onto one class, which is confident too."""

from __future__ import annotations

from . import ValidationData, mean_entropy, probabilities, register_validator


@register_validator("entropy")
def negative_entropy(data: ValidationData) -> float:
    return -float(mean_entropy(probabilities(data.target_logits)))
