"""ADVENT (Vu et al. 2019): a segmentation model is confident on the domain it was trained on
and unsure at dusk, so its pixel entropy says where it fails. Two terms: the target's mean
pixel entropy is minimised (MinEnt), and a discriminator is trained on the weighted
self-information maps -p log p of both domains (AdvEnt), so target maps take the low-entropy
structure of source ones, through a gradient reversal layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import AdaptationMethod, DomainBatch, register_method
from .output_adversarial import adversarial_maps, map_discriminator

ENTROPY_WEIGHT = 1.0  # MinEnt next to AdvEnt (both at --trade-off)


def self_information(logits: torch.Tensor) -> torch.Tensor:
    """-p log p per class and pixel, divided by log C (ADVENT's weighted self-information)."""
    probs = F.softmax(logits.float(), dim=1)
    return -probs * torch.log(probs.clamp_min(1e-12)) / math.log(logits.shape[1])


def pixel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean normalised entropy over pixels: 0 certain, 1 uniform."""
    return self_information(logits).sum(1).mean()


@register_method("advent")
class Advent(AdaptationMethod):
    outputs = ("pixel",)

    def __init__(self, width: int, num_classes: int, trade_off: float = 1.0):
        super().__init__(width, num_classes, trade_off)
        self.discriminator = map_discriminator(num_classes)

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        info_s, info_t = self_information(batch.logits_s), self_information(batch.logits_t)
        adv, accuracy = adversarial_maps(self.discriminator, info_s, info_t, batch.progress)
        entropy = info_t.sum(1).mean()
        return {
            "entropy_loss": self.trade_off * ENTROPY_WEIGHT * entropy,
            "advent_loss": self.trade_off * adv,
            "domain_acc": accuracy.detach(),
        }
