"""The paper's milestone CNNs and the efficient ones, from torchvision's model zoo.

Preprocessing and download addresses come from torchvision's own weights enums.
"""

from __future__ import annotations

from collections.abc import Callable

import torchvision
from torch import nn
from torchvision.models import get_model_weights

from ..catalog import CATALOG
from .registry import (
    BackboneSpec,
    LayerGroup,
    Preprocessing,
    WeightsInfo,
    register_backbone,
    sequential_groups,
)


def _preprocessing_of(weights_enum) -> Preprocessing:
    tf = weights_enum.transforms()
    return Preprocessing(
        input_size=int(tf.crop_size[0]),
        resize_size=int(tf.resize_size[0]),
        mean=tuple(float(v) for v in tf.mean),
        std=tuple(float(v) for v in tf.std),
        interpolation=tf.interpolation.value,
    )


def _replace(path: str) -> Callable[[nn.Module], nn.Module]:
    """Strip the ImageNet classifier at ``path`` (dotted, may index a Sequential)."""

    def strip(model: nn.Module) -> nn.Module:
        *parents, last = path.split(".")
        owner = model
        for part in parents:
            owner = owner[int(part)] if part.isdigit() else getattr(owner, part)
        if last.isdigit():
            owner[int(last)] = nn.Identity()
        else:
            setattr(owner, last, nn.Identity())
        return model

    return strip


def _vgg_groups(model: nn.Module) -> list[LayerGroup]:
    groups, current, block = [], [], 1
    for idx, layer in enumerate(model.features):
        current.append(f"features.{idx}")
        if isinstance(layer, nn.MaxPool2d):
            groups.append(LayerGroup(f"block{block}", tuple(current)))
            current, block = [], block + 1
    return [*groups, LayerGroup("fc6_fc7", ("classifier",))]


def _strip_googlenet(model: nn.Module) -> nn.Module:
    model.aux_logits = False
    model.aux1 = None
    model.aux2 = None
    model.fc = nn.Identity()
    return model


def _tv(
    name: str,
    *,
    head: str,
    groups: Callable[[nn.Module], list[LayerGroup]],
    cam: str,
    build_kwargs: dict | None = None,
    strip: Callable[[nn.Module], nn.Module] | None = None,
) -> None:
    enum = get_model_weights(name)
    # DEFAULT (best) first, then the others, so an imported IMAGENET1K_V1 file is used offline.
    ordered = [enum.DEFAULT, *(w for w in enum if w is not enum.DEFAULT)]
    kwargs = dict(build_kwargs or {})
    register_backbone(
        BackboneSpec(
            name=name,
            build=lambda: torchvision.models.get_model(name, weights=None, **kwargs),
            strip_head=strip or _replace(head),
            feature_dim=CATALOG[name].feature_dim,
            preprocessing=_preprocessing_of(enum.DEFAULT),
            weights=tuple(
                WeightsInfo(tag=w.name, url=w.url, preprocessing=_preprocessing_of(w))
                for w in ordered
            ),
            layer_groups=groups,
            family="torchvision",
            description=CATALOG[name].description,
            cam_layer=cam,
        )
    )


_tv(
    "alexnet",
    head="classifier.6",
    cam="features.11",
    groups=lambda m: [
        LayerGroup("conv1", ("features.0",)),
        LayerGroup("conv2", ("features.3",)),
        LayerGroup("conv3_5", ("features.6", "features.8", "features.10")),
        LayerGroup("fc6_fc7", ("classifier",)),
    ],
)
_tv("vgg11_bn", head="classifier.6", cam="features.27", groups=_vgg_groups)
_tv("vgg16", head="classifier.6", cam="features.29", groups=_vgg_groups)
_tv(
    "googlenet",
    head="fc",
    cam="inception5b",
    strip=_strip_googlenet,
    # The ImageNet checkpoint holds the auxiliary heads and expects transform_input.
    build_kwargs={"aux_logits": True, "transform_input": True, "init_weights": True},
    groups=lambda m: [
        LayerGroup("stem", ("conv1", "conv2", "conv3")),
        LayerGroup("inception3", ("inception3a", "inception3b")),
        LayerGroup("inception4", tuple(f"inception4{c}" for c in "abcde")),
        LayerGroup("inception5", ("inception5a", "inception5b")),
    ],
)
_RESNET_GROUPS = [
    LayerGroup("stem", ("conv1", "bn1")),
    *(LayerGroup(f"layer{i}", (f"layer{i}",)) for i in range(1, 5)),
]
_tv(
    "resnet18",
    head="fc",
    cam="layer4",
    groups=lambda m: _RESNET_GROUPS,
)
_tv(
    "resnet50",
    head="fc",
    cam="layer4",
    groups=lambda m: _RESNET_GROUPS,
)
_tv(
    "mobilenet_v2",
    head="classifier.1",
    cam="features.18",
    groups=lambda m: sequential_groups(
        "features", [0, 2, 4, 7, 14, 19], ["stem", "stage2", "stage3", "stage4", "stage5"]
    ),
)
_tv(
    "mobilenet_v3_small",
    head="classifier.3",
    cam="features.12",
    groups=lambda m: [
        *sequential_groups("features", [0, 2, 4, 9, 13], ["stem", "stage2", "stage3", "stage4"]),
        LayerGroup("pre_logits", ("classifier.0",)),
    ],
)
_tv(
    "mobilenet_v3_large",
    head="classifier.3",
    cam="features.16",
    groups=lambda m: [
        *sequential_groups(
            "features", [0, 2, 4, 7, 13, 17], ["stem", "stage2", "stage3", "stage4", "stage5"]
        ),
        LayerGroup("pre_logits", ("classifier.0",)),
    ],
)
_tv(
    "efficientnet_b0",
    head="classifier",
    cam="features.8",
    groups=lambda m: sequential_groups(
        "features", [0, 2, 3, 4, 6, 9], ["stem", "stage2", "stage3", "stage4", "stage5"]
    ),
)
