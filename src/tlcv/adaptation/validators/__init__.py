"""Validators: scores that choose an adaptation checkpoint (and method, trade-off) without
target labels, one file each, registered by name.

A validator sees what an honest run has at the end of an epoch: the held-out source split
(features, logits, labels) and the unlabelled target (features, logits). It returns one number,
higher = better. ``tlcv adapt --select NAME`` keeps the epoch it scores best; every validator
is logged per epoch (``sel_<name>`` in history.csv) so they can be compared afterwards
(``tlcv experiment adaptation-selection``). Adding one is a new file here with
``@register_validator("name")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...registry import Registry, import_submodules


@dataclass
class ValidationData:
    """One epoch's outputs. Features are the bottleneck's (what the classifier reads)."""

    source_features: torch.Tensor  # (N_s, F), held-out source split
    source_logits: torch.Tensor  # (N_s, C)
    source_labels: torch.Tensor  # (N_s,)
    target_features: torch.Tensor  # (N_t, F), unlabelled
    target_logits: torch.Tensor  # (N_t, C)
    seed: int = 0  # for validators that subsample or fit something


Validator = Callable[[ValidationData], float]
VALIDATORS: Registry[Validator] = Registry(
    "validator",
    load=import_submodules(__name__, __path__),  # one file per validator
)


def register_validator(name: str) -> Callable[[Validator], Validator]:
    return VALIDATORS.register(name)


def metric_name(name: str) -> str:
    """The history.csv column of a validator's per-epoch score."""
    return "sel_" + name.replace("-", "_")


def score_all(data: ValidationData) -> dict[str, float]:
    """Every registered validator's score (NaN where one cannot score this data)."""
    scores = {}
    for name, validator in VALIDATORS.items():
        try:
            scores[name] = float(validator(data))
        except (ValueError, RuntimeError):  # e.g. too few samples for a fit
            scores[name] = float("nan")
    return scores


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.double(), dim=1)


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(1).mean()
