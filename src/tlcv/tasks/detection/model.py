"""Detectors on registry backbones: torchvision's Faster R-CNN (FPN), RetinaNet, FCOS and
SSDlite, built on the backbone's own pyramid (backbones/pyramid.py) (+ torchvision's
FeaturePyramidNetwork), so the ImageNet encoder transfers into the detector; ``--detector NAME``
picks one.

Boxes are predicted in the input image's own pixels: torchvision's transform resizes each image
so its short side is ``image_size`` (long side at most ``max_size``; SSDlite: a fixed square)
and maps the boxes back. In training the loader has already resized (and maybe cropped) each
image, so the FPN detectors skip their own resize there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from ...backbones import Backbone
from ...backbones.pyramid import STRIDES, PyramidTap, find_taps
from ...errors import TlcvError
from ...models import register_model_kind
from ...registry import Registry

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


def _normalisation(backbone: Backbone) -> dict:
    prep = backbone.preprocessing
    return dict(image_mean=list(prep.mean), image_std=list(prep.std))


def _common(spec: dict, backbone: Backbone) -> dict:
    """Resize at prediction only: training batches come at the scale (or crop) the loader made."""
    return dict(
        min_size=int(spec["image_size"]),
        max_size=int(spec["max_size"]),
        _skip_resize=True,
        **_normalisation(backbone),
    )


# Scenes hold a few objects (GTSDB: 1.6 signs a scene), not COCO's dozens: fewer proposals and
# sampled regions than torchvision's defaults (2000 / 1000 / 512), which would spend most of a
# step in the box head's 1024-wide layers (6 MFLOP a region) on background.
PROPOSALS = dict(
    rpn_pre_nms_top_n_train=1000,
    rpn_post_nms_top_n_train=500,
    rpn_pre_nms_top_n_test=500,
    rpn_post_nms_top_n_test=300,
    box_batch_size_per_image=128,
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
        **PROPOSALS,
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


class SSDLiteBody(nn.Module):
    """The encoder's stride-16 and stride-32 maps + four extra stride-2 blocks (1x1, depthwise
    3x3 stride 2, 1x1), as in SSDlite (Sandler et al. 2018): six maps for the SSD heads."""

    EXTRA = (512, 256, 256, 128)

    def __init__(self, tap: PyramidTap, channels: list[int], norm):
        super().__init__()
        from torchvision.ops.misc import Conv2dNormActivation

        self.tap, self.levels = tap, [STRIDES.index(16), STRIDES.index(32)]
        blocks, width = [], channels[self.levels[-1]]
        for out in self.EXTRA:
            mid, act = out // 2, nn.ReLU6
            blocks.append(
                nn.Sequential(
                    Conv2dNormActivation(width, mid, 1, norm_layer=norm, activation_layer=act),
                    Conv2dNormActivation(
                        mid, mid, 3, stride=2, groups=mid, norm_layer=norm, activation_layer=act
                    ),
                    Conv2dNormActivation(mid, out, 1, norm_layer=norm, activation_layer=act),
                )
            )
            width = out
        self.extra = nn.ModuleList(blocks)
        self.out_channels_list = [channels[i] for i in self.levels] + list(self.EXTRA)

    def forward(self, images: torch.Tensor) -> OrderedDict:
        feats = self.tap(images)
        maps = [feats[i] for i in self.levels]
        for block in self.extra:
            maps.append(block(maps[-1]))
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


@DETECTORS.register("ssdlite")
def ssdlite(spec: dict, backbone: Backbone, tap: PyramidTap, channels: list[int]):
    """SSDlite: one stage, depthwise-separable heads on six maps (strides 16-512), a fixed
    square input of ``image_size`` (scenes are squeezed to it, as SSD does); default boxes at
    the anchor sizes (stride 16 gets the smallest). Made for phones: the cheapest here."""
    from functools import partial

    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.detection.ssdlite import SSDLiteHead

    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    size = int(spec["image_size"])
    sizes = [*spec["anchors"], spec["anchors"][-1] * 2, spec["anchors"][-1] * 4]  # 6 maps + 1
    anchors = DefaultBoxGenerator([[2, 3]] * 6, scales=[s / size for s in sizes])
    body = SSDLiteBody(tap, channels, norm)
    classes = spec["num_classes"] + 1
    head = SSDLiteHead(body.out_channels_list, anchors.num_anchors_per_location(), classes, norm)
    return SSD(body, anchors, (size, size), classes, head=head, **_normalisation(backbone))


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


def parse_anchor_sizes(text: str) -> list[int]:
    """--anchor-sizes: one size in pixels per pyramid level (P3-P7)."""
    try:
        sizes = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError as exc:
        raise TlcvError(
            f"--anchor-sizes {text!r}: whole numbers of pixels, e.g. 16,32,64,128,256"
        ) from exc
    if len(sizes) != 5 or any(s < 2 for s in sizes):
        raise TlcvError(
            "--anchor-sizes takes five sizes (one per pyramid level), e.g. 16,32,64,128,256"
        )
    return sizes


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


@register_model_kind("detection")
def rebuild_model(backbone: Backbone, spec: dict, head_state: dict) -> DetectionModel:
    tap = PyramidTap(backbone.net, spec["taps"])
    head = DETECTORS.get(spec["detector"])(spec, backbone, tap, list(spec["channels"]))
    head.load_state_dict(head_state, strict=True)
    return DetectionModel(backbone, head).eval()
