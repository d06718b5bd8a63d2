"""Encoder + decoder: any registry backbone as the encoder, a well-kept decoder on top.

The encoder is the registry ``Backbone`` itself (same weights, layer groups, freeze schedules
and learning-rate ratio as classification); its stride 2-32 pyramid comes from
backbones/pyramid.py. Decoders come from segmentation-models-pytorch (U-Net, FPN) and
torchvision (LR-ASPP), registered by name: ``--decoder NAME``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones import Backbone
from ...backbones.pyramid import PyramidTap, find_taps
from ...models import register_model_kind
from ...registry import Registry

DECODERS: Registry[Callable[[list[int], int], nn.Module]] = Registry("decoder")


class SegmentationModel(nn.Module):
    """Images (B, 3, H, W) -> class logits (B, K, H, W)."""

    def __init__(self, backbone: Backbone, head: nn.Module, taps: list[str], image_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.taps = list(taps)
        self.image_size = int(image_size)  # the short side it was trained to see images at
        self.tap = PyramidTap(backbone.net, taps)

    def pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[input, stride 2, 4, 8, 16, 32] (the layout smp decoders read)."""
        return [images, *self.tap(images)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.pyramid(images))
        if logits.shape[-2:] != images.shape[-2:]:
            logits = F.interpolate(
                logits, size=images.shape[-2:], mode="bilinear", align_corners=False
            )
        return logits


class _SmpHead(nn.Module):
    """An smp decoder + its segmentation head: pyramid -> logits."""

    def __init__(self, decoder: nn.Module, classifier: nn.Module):
        super().__init__()
        self.decoder, self.classifier = decoder, classifier

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.decoder(feats))


@DECODERS.register("unet")
def unet(channels: list[int], num_classes: int) -> nn.Module:
    """U-Net (Ronneberger et al. 2015): skip connections at every stride, full resolution."""
    from segmentation_models_pytorch.base import SegmentationHead
    from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder

    widths = (256, 128, 64, 32, 16)
    decoder = UnetDecoder(encoder_channels=[3, *channels], decoder_channels=widths, n_blocks=5)
    return _SmpHead(decoder, SegmentationHead(widths[-1], num_classes, kernel_size=3))


@DECODERS.register("fpn")
def fpn(channels: list[int], num_classes: int) -> nn.Module:
    """Feature Pyramid Network decoder (Kirillov et al. 2019): strides 4-32, output at 4."""
    from segmentation_models_pytorch.base import SegmentationHead
    from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder

    decoder = FPNDecoder(encoder_channels=[3, *channels], encoder_depth=5)
    return _SmpHead(decoder, SegmentationHead(decoder.out_channels, num_classes, kernel_size=1))


class _LRASPP(nn.Module):
    def __init__(self, channels: list[int], num_classes: int):
        super().__init__()
        from torchvision.models.segmentation.lraspp import LRASPPHead

        self.head = LRASPPHead(channels[2], channels[4], num_classes, inter_channels=128)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.head({"low": feats[3], "high": feats[5]})  # strides 8 and 32


@DECODERS.register("lraspp")
def lraspp(channels: list[int], num_classes: int) -> nn.Module:
    """torchvision's Lite R-ASPP (MobileNetV3 paper): the cheapest, output at stride 8."""
    return _LRASPP(channels, num_classes)


def build_head(spec: dict) -> nn.Module:
    return DECODERS.get(spec["decoder"])(list(spec["channels"]), int(spec["num_classes"]))


def build_model(backbone: Backbone, decoder: str, num_classes: int, image_size: int, seed: int = 0):
    """A fresh model and the head spec model.json records (so the run reloads it, at its
    scale: evaluation and serving ask the model, never the caller)."""
    DECODERS.get(decoder)  # an unknown name fails with the choices before any probing
    taps, channels = find_taps(backbone.net)
    spec = {
        "type": "segmentation",
        "decoder": decoder,
        "taps": taps,
        "channels": channels,
        "num_classes": num_classes,
        "image_size": int(image_size),
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(spec)
    return SegmentationModel(backbone, head, taps, image_size), spec


@register_model_kind("segmentation")
def rebuild_model(backbone: Backbone, spec: dict, head_state: dict) -> SegmentationModel:
    head = build_head(spec)
    head.load_state_dict(head_state, strict=True)
    return SegmentationModel(backbone, head, spec["taps"], spec["image_size"]).eval()
