"""Where the model looks: class-activation maps (captum) for a classification run's images.

Methods are registered by name (``--method``, one function + ``@EXPLAINERS.register`` each):
a method takes the model, the registry's ``cam_layer`` module, a normalised batch and the
target class indices, and returns one non-negative map per image at the input's size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..registry import Registry

EXPLAINERS: Registry[Callable[..., torch.Tensor]] = Registry("explanation method")


def _positive_sum(attribution: torch.Tensor) -> torch.Tensor:
    """Pixel attributions (B, 3, H, W) -> one magnitude map (B, H, W)."""
    return attribution.abs().sum(1)


@EXPLAINERS.register("gradcam")
def gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """Grad-CAM (Selvaraju et al. 2017): the layer's channels weighted by their mean gradient."""
    from captum.attr import LayerAttribution, LayerGradCam

    maps = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    return LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), "bilinear")[:, 0]


@EXPLAINERS.register("guided-gradcam")
def guided_gradcam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor):
    """Guided Grad-CAM: Grad-CAM times guided backpropagation, sharper edges."""
    from captum.attr import GuidedGradCam

    return _positive_sum(GuidedGradCam(model, layer).attribute(x, target=target))


@EXPLAINERS.register("integrated-gradients")
def integrated_gradients(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017) from a black image, 32 steps."""
    from captum.attr import IntegratedGradients

    attribution = IntegratedGradients(model).attribute(
        x, target=target, n_steps=32, internal_batch_size=16
    )
    return _positive_sum(attribution)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map scaled to [0, 1] (an all-zero map stays zero)."""
    peak = maps.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
    return (maps / peak).clamp(0, 1)
