"""Soft neighbourhood density (Saito et al. 2021): how tightly target predictions cluster.
The target's softmax vectors, L2-normalised, are compared with each other; each row of
similarities becomes a distribution (temperature 0.05, self excluded) whose entropy is high
when a sample has many close neighbours. SND is the mean entropy: high for a classifier whose
target outputs form dense clusters."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import ValidationData, probabilities, register_validator

TEMPERATURE = 0.05
MAX_SAMPLES = 2000  # the similarity matrix is N x N


@register_validator("snd")
def soft_neighbourhood_density(data: ValidationData) -> float:
    probs = probabilities(data.target_logits)
    if len(probs) > MAX_SAMPLES:  # evenly spaced: deterministic, covers the whole target
        probs = probs[torch.linspace(0, len(probs) - 1, MAX_SAMPLES).long()]
    if len(probs) < 2:
        raise ValueError("SND needs at least two target samples")
    unit = F.normalize(probs, dim=1)
    sim = unit @ unit.T / TEMPERATURE
    sim.fill_diagonal_(float("-inf"))
    p = torch.softmax(sim, dim=1)
    return float(-(p * torch.log(p.clamp_min(1e-12))).sum(1).mean())
