"""The clip model (a CNN per frame + a temporal head) and how a run folder rebuilds it. Runs
written before the task had its own name record the kind ``sequence``: the same rebuild."""

from __future__ import annotations

import torch
from torch import nn

from ...backbones import Backbone
from ...heads.temporal import TemporalHead
from ...models import register_model_kind


class SequenceModel(nn.Module):
    """Per-frame backbone + temporal head: clips -> class scores, and scores per step."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(feats, lengths)


@register_model_kind("clip-classification", "sequence")
def rebuild_sequence(backbone: Backbone, spec: dict, head_state: dict) -> SequenceModel:
    options = {k: v for k, v in spec.items() if k not in ("type", "kind", "in_features")}
    classes = options.pop("num_classes")
    head = TemporalHead(spec["kind"], spec["in_features"], classes, **options)
    head.load_state_dict(head_state, strict=True)
    return SequenceModel(backbone, head.eval()).eval()
