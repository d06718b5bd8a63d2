"""DANN (Ganin & Lempitsky 2015): a domain discriminator trained through a gradient reversal
layer, so the features learn to make source and target indistinguishable."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import AdaptationMethod, DomainBatch, register_method


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-coeff`` on the way back."""
    return _Reverse.apply(x, coeff)


def warm_up(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule for the reversal strength: 0 at the start, close to 1 at the end."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def discriminator(in_features: int, hidden: int = 1024) -> nn.Module:
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


def domain_loss(
    logits: torch.Tensor, n_source: int, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary cross-entropy with source = 1, target = 0; also the discriminator's accuracy."""
    target = torch.zeros_like(logits)
    target[:n_source] = 1.0
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weights)
    accuracy = ((logits > 0).float() == target).float().mean()
    return loss, accuracy


@register_method("dann")
class DANN(AdaptationMethod):
    outputs = ("image",)  # reads bottleneck features

    def __init__(self, width: int, num_classes: int, trade_off: float = 1.0):
        super().__init__(width, num_classes, trade_off)
        self.discriminator = discriminator(width)

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        f = torch.cat([batch.f_s, batch.f_t])
        logits = self.discriminator(reverse_gradient(f, warm_up(batch.progress))).squeeze(1)
        loss, accuracy = domain_loss(logits, len(batch.f_s))
        return {"dann_loss": self.trade_off * loss, "domain_acc": accuracy.detach()}
