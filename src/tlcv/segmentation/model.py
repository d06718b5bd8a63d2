"""Encoder + decoder: any registry backbone as the encoder, a well-kept decoder on top.

The encoder is the registry ``Backbone`` itself (same weights, layer groups, freeze schedules
and learning-rate ratio as classification). Its multi-scale pyramid is read by forward hooks on
the modules that end each stride (2, 4, 8, 16, 32), found once by probing the network with a
dummy image, so any CNN in the registry (torchvision, timm, small ones) works without a
per-architecture table. Decoders come from segmentation-models-pytorch (U-Net, FPN) and
torchvision (LR-ASPP), registered by name: ``--decoder NAME``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Backbone
from ..errors import TlcvError
from ..registry import Registry

STRIDES = (2, 4, 8, 16, 32)
PROBE = 256
DECODERS: Registry[Callable[[list[int], int], nn.Module]] = Registry("decoder")


def find_taps(net: nn.Module) -> tuple[list[str], list[int]]:
    """Names and channel counts of the module that ends each stride of STRIDES: the shallowest
    module (a stage, not a layer inside a block) with that output stride, the last one run."""
    best: dict[int, tuple[tuple[int, int], str, int]] = {}  # stride -> (rank, name, channels)
    order = [0]

    def record(name):
        def hook(_module, _inputs, output):
            order[0] += 1
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                h, w = output.shape[-2:]
                stride = PROBE // h if h == w and PROBE % h == 0 else 0
                rank = (-name.count("."), order[0])
                if stride in STRIDES and (stride not in best or rank > best[stride][0]):
                    best[stride] = (rank, name, int(output.shape[1]))

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in net.named_modules() if n]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros(1, 3, PROBE, PROBE))
    finally:
        for handle in handles:
            handle.remove()
        net.train(was_training)
    absent = [s for s in STRIDES if s not in best]
    if absent:
        raise TlcvError(
            f"the backbone gives no feature map at stride {', '.join(map(str, absent))}",
            hint="segmentation needs a CNN whose stages halve the resolution five times "
            "(MobileNet, EfficientNet, ResNet, VGG, most timm CNNs)",
        )
    return [best[s][1] for s in STRIDES], [best[s][2] for s in STRIDES]


class SegmentationModel(nn.Module):
    """Images (B, 3, H, W) -> class logits (B, K, H, W)."""

    def __init__(self, backbone: Backbone, head: nn.Module, taps: list[str]):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.taps = list(taps)
        self._captured: dict[str, torch.Tensor] = {}
        modules = dict(backbone.net.named_modules())
        for name in self.taps:
            modules[name].register_forward_hook(self._keep(name))

    def _keep(self, name: str):
        def hook(_module, _inputs, output):
            self._captured[name] = output

        return hook

    def pyramid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[input, stride 2, 4, 8, 16, 32] (the layout smp decoders read)."""
        self._captured = {}
        self.backbone.net(images)
        feats = [self._captured[name] for name in self.taps]
        self._captured = {}
        return [images, *feats]

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


def build_model(backbone: Backbone, decoder: str, num_classes: int, seed: int = 0):
    """A fresh model and the head spec model.json records (so the run reloads it)."""
    DECODERS.get(decoder)  # an unknown name fails with the choices before any probing
    taps, channels = find_taps(backbone.net)
    spec = {
        "type": "segmentation",
        "decoder": decoder,
        "taps": taps,
        "channels": channels,
        "num_classes": num_classes,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head(spec)
    return SegmentationModel(backbone, head, taps), spec


def rebuild_model(backbone: Backbone, spec: dict, head_state: dict) -> SegmentationModel:
    head = build_head(spec)
    head.load_state_dict(head_state, strict=True)
    return SegmentationModel(backbone, head, spec["taps"]).eval()
