"""Batch norm folded into the convolution before it, for frozen networks in eval mode.

A frozen backbone's batch norm is a fixed per-channel affine map, so it can live in the
preceding convolution's weights: one pass over the activations fewer per layer (MobileNetV2
to stride 16 on 2 CPU cores: 6.8 instead of 9.8 ms an image, same outputs to 1e-6).
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _after_norm(norm: nn.BatchNorm2d) -> nn.Module:
    """What stays of a norm layer once its affine map is folded away: timm's BatchNormAct2d
    carries its dropout and activation inside it; a plain BatchNorm2d leaves nothing."""
    rest = {n: getattr(norm, n) for n in ("drop", "act") if getattr(norm, n, None) is not None}
    return nn.Sequential(OrderedDict(rest)) if rest else nn.Identity()  # names kept for hooks


def fused_copy(net: nn.Module) -> nn.Module:
    """An eval-mode copy of ``net`` with every Conv2d -> BatchNorm2d pair (consecutive children
    of one module, as torchvision's and timm's blocks hold them) folded into one Conv2d.
    Module names are kept, so hooks find the same layers; ``net`` itself is left as it is
    (its state dict is what a run saves)."""
    fused = copy.deepcopy(net).eval()
    for module in list(fused.modules()):
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, norm = module._modules[first], module._modules[second]
            if (
                isinstance(conv, nn.Conv2d)
                and isinstance(norm, nn.BatchNorm2d)
                and norm.track_running_stats
                and norm.running_mean is not None
                and conv.out_channels == norm.num_features
            ):
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = _after_norm(norm)
    return fused
