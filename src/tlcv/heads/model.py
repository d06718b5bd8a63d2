"""ClassifierModel: a backbone and a head, images -> class scores. The model image
classification and domain adaptation train; the classification task registers how a run folder
rebuilds it (tasks/classification/model.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..backbones import Backbone


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
