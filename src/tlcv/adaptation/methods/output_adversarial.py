"""Output-space adversarial adaptation (AdaptSegNet, Tsai et al. 2018): a fully convolutional
discriminator tells source from target by the segmentation's softmax maps, and the network
learns, through a gradient reversal layer, to make dusk maps look like daylight ones. Scene
layouts (sky above buildings above road) are shared by both domains even where the pixels
differ, so aligning the outputs transfers where aligning features would not."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import AdaptationMethod, DomainBatch, register_method
from .dann import domain_loss, reverse_gradient, warm_up

POOL = 4  # maps are averaged over 4 x 4 pixels first: the layout, at a sixteenth of the cost
MIN_SIDE = 32  # ... unless that leaves fewer pixels than the four stride-2 layers need


def map_discriminator(in_channels: int, width: int = 64) -> nn.Module:
    """AdaptSegNet's discriminator: four 4x4 stride-2 convolutions with leaky ReLUs, then one
    logit per patch (source or target)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for out in (width, width * 2, width * 4, width * 8):
        layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        channels = out
    layers.append(nn.Conv2d(channels, 1, 3, padding=1))  # any map size (paper: 4x4, stride 2)
    return nn.Sequential(*layers)


def adversarial_maps(
    discriminator: nn.Module, maps_s: torch.Tensor, maps_t: torch.Tensor, progress: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The discriminator's loss on both domains' maps (patch logits: source 1, target 0) and
    its accuracy; the gradient reaching the maps is reversed, so the segmentation network
    learns to make the domains indistinguishable."""
    maps = torch.cat([maps_s, maps_t])
    pool = max(1, min(POOL, min(maps.shape[-2:]) // MIN_SIDE))
    maps = F.avg_pool2d(maps, pool) if pool > 1 else maps
    if min(maps.shape[-2:]) < 16:  # four stride-2 layers need 16 pixels a side
        h, w = maps.shape[-2:]
        maps = F.interpolate(maps, size=(max(16, h), max(16, w)), mode="nearest")
    logits = discriminator(reverse_gradient(maps, warm_up(progress)))
    per_image = logits.flatten(1)
    n_patches = per_image.shape[1]
    flat = per_image.reshape(-1)
    return domain_loss(flat, len(maps_s) * n_patches)


@register_method("output-adversarial")
class OutputAdversarial(AdaptationMethod):
    outputs = ("pixel",)

    def __init__(self, width: int, num_classes: int, trade_off: float = 1.0):
        super().__init__(width, num_classes, trade_off)
        self.discriminator = map_discriminator(num_classes)

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        maps_s = F.softmax(batch.logits_s.float(), dim=1)
        maps_t = F.softmax(batch.logits_t.float(), dim=1)
        loss, accuracy = adversarial_maps(self.discriminator, maps_s, maps_t, batch.progress)
        return {"output_adv_loss": self.trade_off * loss, "domain_acc": accuracy.detach()}
