"""Batch nuclear-norm (Cui et al. 2020): the nuclear norm of the target prediction matrix. It
grows with both confidence (large rows) and diversity (high rank), the two things a good target
classifier shows. Divided by sqrt(N), so it runs from 1 (every image confidently in one class)
to sqrt(C) (confident and balanced) whatever the target's size."""

from __future__ import annotations

import torch

from . import ValidationData, probabilities, register_validator


@register_validator("bnm")
def batch_nuclear_norm(data: ValidationData) -> float:
    probs = probabilities(data.target_logits)
    return float(torch.linalg.matrix_norm(probs, ord="nuc") / len(probs) ** 0.5)
