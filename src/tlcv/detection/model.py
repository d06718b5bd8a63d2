"""Detectors on registry backbones: torchvision's Faster R-CNN (FPN), RetinaNet and FCOS, built
on the backbone's own pyramid (backbones/pyramid.py) + torchvision's FeaturePyramidNetwork, so
the ImageNet encoder transfers into the detector; ``--detector NAME`` picks one.

Boxes are predicted in the input image's own pixels: torchvision's transform resizes each image
so its short side is ``image_size`` (long side at most ``max_size``) and maps the boxes back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from ..backbones import Backbone
from ..backbones.pyramid import STRIDES, PyramidTap, find_taps
from ..registry import Registry

DETECTORS: Registry[Callable[..., nn.Module]] = Registry("detector")
FPN_CHANNELS = 256  # torchvision's width; spec["fpn_channels"] narrows it (CPU budgets)
DEFAULT_ANCHORS = (16, 32, 64, 128, 256)  # traffic signs are 16-128 px in 1360x800 scenes


class PyramidFPN(nn.Module):
    """The encoder's maps at ``strides`` through an FPN -> OrderedDict, as detectors expect."""

    def __init__(
        self, tap: PyramidTap, channels: list[int], strides: tuple[int, ...], extra, width: int
    ):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.tap, self.levels = tap, [STRIDES.index(s) for s in strides]
        self.fpn = FeaturePyramidNetwork(
            [channels[i] for i in self.levels], width, extra_blocks=extra
        )
        self.out_channels = width

    def forward(self, images: torch.Tensor) -> OrderedDict:
        feats = self.tap(images)
        return self.fpn(OrderedDict((str(i), feats[level]) for i, level in enumerate(self.levels)))


def _width(spec: dict) -> int:
    return int(spec.get("fpn_channels", FPN_CHANNELS))  # runs written before the option: 256


def _common(spec: dict, backbone: Backbone) -> dict:
    prep = backbone.preprocessing
    size = int(spec["image_size"])
    return dict(
        min_size=size,
        max_size=int(spec["max_size"]),
        image_mean=list(prep.mean),
        image_std=list(prep.std),
    )


@DETECTORS.register("fasterrcnn")
def faster_rcnn(spec: dict, backbone: Backbone, tap: PyramidTap, channels: list[int]):
    """Faster R-CNN + FPN (Ren et al. 2015, Lin et al. 2017): strides 4-32 + a pooled level."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    body = PyramidFPN(tap, channels, (4, 8, 16, 32), LastLevelMaxPool(), _width(spec))
    anchors = AnchorGenerator(tuple((s,) for s in spec["anchors"]), ((0.5, 1.0, 2.0),) * 5)
    pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    return FasterRCNN(
        body,
        num_classes=spec["num_classes"] + 1,
        rpn_anchor_generator=anchors,
        box_roi_pool=pool,
        **_common(spec, backbone),
    )


def _p3_p7(spec, tap, channels):
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    width = _width(spec)
    return PyramidFPN(tap, channels, (8, 16, 32), LastLevelP6P7(width, width), width)


@DETECTORS.register("retinanet")
def retinanet(spec: dict, backbone: Backbone, tap: PyramidTap, channels: list[int]):
    """RetinaNet (Lin et al. 2017): focal loss, one stage, P3-P7, 3 scales x 3 ratios a cell."""
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in spec["anchors"])
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
    return RetinaNet(
        _p3_p7(spec, tap, channels),
        num_classes=spec["num_classes"] + 1,
        anchor_generator=anchors,
        **_common(spec, backbone),
    )


@DETECTORS.register("fcos")
def fcos(spec: dict, backbone: Backbone, tap: PyramidTap, channels: list[int]):
    """FCOS (Tian et al. 2019): anchor-free, one point a cell on P3-P7."""
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    anchors = AnchorGenerator(tuple((s // 2,) for s in spec["anchors"]), ((1.0,),) * 5)
    return FCOS(
        _p3_p7(spec, tap, channels),
        num_classes=spec["num_classes"] + 1,
        anchor_generator=anchors,
        **_common(spec, backbone),
    )


class DetectionModel(nn.Module):
    """A registry backbone (``.backbone``, the transferred encoder) + a torchvision detector
    (``.head``: FPN and heads). Lists of float images in [0, 1] in; in training mode with
    targets, the loss dict; otherwise one dict of boxes / labels (1..K) / scores per image."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        return self.head(images, targets)


def build_model(backbone: Backbone, spec: dict, seed: int = 0):
    """A fresh detector; ``spec`` (detector, num_classes, image_size, max_size, anchors) is
    completed with the pyramid taps and recorded in model.json to rebuild the run."""
    DETECTORS.get(spec["detector"])
    taps, channels = find_taps(backbone.net)
    spec = {"type": "detection", **spec, "taps": taps, "channels": channels}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = DETECTORS.get(spec["detector"])(
            spec, backbone, PyramidTap(backbone.net, taps), channels
        )
    return DetectionModel(backbone, head), spec


def rebuild_model(backbone: Backbone, spec: dict, head_state: dict) -> DetectionModel:
    tap = PyramidTap(backbone.net, spec["taps"])
    head = DETECTORS.get(spec["detector"])(spec, backbone, tap, list(spec["channels"]))
    head.load_state_dict(head_state, strict=True)
    return DetectionModel(backbone, head).eval()
