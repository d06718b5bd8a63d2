"""AdaBN (Li et al. 2016): train on the source as usual, then re-estimate every batch-norm
layer's statistics on the target. No loss term; the engine does the re-estimation."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from . import AdaptationMethod, register_method


@register_method("adabn")
class AdaBN(AdaptationMethod):
    recalibrates_bn = True


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, batches: Iterable, forward: Callable[[object], object]
) -> int:
    """Replace BN running statistics by their average over ``batches``; nothing else changes.

    Only the BN layers run in training mode (dropout stays off); returns the layers updated.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    momenta = [bn.momentum for bn in layers]
    model.eval()
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over all batches
        bn.train()
    try:
        for batch in batches:
            forward(batch)
    finally:
        for bn, momentum in zip(layers, momenta, strict=True):
            bn.momentum = momentum
        model.train(was_training)
    return len(layers)
