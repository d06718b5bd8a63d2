"""The two models image and clip classification runs hold, and how a run folder rebuilds them
(model kinds ``classification`` and ``sequence``, tlcv/models.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..backbones import Backbone
from ..models import register_model_kind
from .classifiers import head_from_state
from .temporal import TemporalHead


class ClassifierModel(nn.Module):
    """Backbone + head: images -> class scores. ``features`` exposes the embedding."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class SequenceModel(nn.Module):
    """Per-frame backbone + temporal head: clips -> class scores, and scores per step."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(feats, lengths)


@register_model_kind("classification")
def rebuild_classifier(backbone: Backbone, spec: dict, head_state: dict) -> ClassifierModel:
    return ClassifierModel(backbone, head_from_state(spec, head_state)).eval()


@register_model_kind("sequence")
def rebuild_sequence(backbone: Backbone, spec: dict, head_state: dict) -> SequenceModel:
    options = {k: v for k, v in spec.items() if k not in ("type", "kind", "in_features")}
    classes = options.pop("num_classes")
    head = TemporalHead(spec["kind"], spec["in_features"], classes, **options)
    head.load_state_dict(head_state, strict=True)
    return SequenceModel(backbone, head.eval()).eval()
