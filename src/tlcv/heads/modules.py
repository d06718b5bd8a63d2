"""Torch heads: features (B, D) -> class scores (B, C). Rebuilt from a small JSON spec plus a
safetensors state, so a saved run reloads without unpickling anything."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KNNHead(nn.Module):
    """Cosine k-nearest-neighbour vote over a stored bank of training features."""

    def __init__(self, in_features: int, num_classes: int, bank_size: int, k: int):
        super().__init__()
        self.k, self.num_classes = k, num_classes
        self.register_buffer("bank", torch.zeros(bank_size, in_features))
        self.register_buffer("bank_labels", torch.zeros(bank_size, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sims = F.normalize(x, dim=1) @ F.normalize(self.bank, dim=1).T
        k = min(self.k, self.bank.shape[0])
        top = sims.topk(k, dim=1).indices
        votes = F.one_hot(self.bank_labels[top], self.num_classes).float().sum(1)
        # Log of vote shares: softmax gives back the vote fractions as probabilities.
        return torch.log(votes / k + 1e-9)


class BottleneckHead(nn.Module):
    """Features -> bottleneck (linear, batch norm, ReLU, dropout) -> classifier.

    Domain adaptation aligns the bottleneck features; ``features`` exposes them.
    """

    def __init__(self, in_features: int, width: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.bottleneck = nn.Sequential(
            nn.Linear(in_features, width),
            nn.BatchNorm1d(width),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.bottleneck(x))


def build_head(spec: dict) -> nn.Module:
    """An empty head of the shape ``spec`` describes (weights are loaded afterwards)."""
    kind = spec["type"]
    if kind == "linear":
        return nn.Linear(spec["in_features"], spec["num_classes"])
    if kind == "mlp":
        sizes = spec["sizes"]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
                if spec.get("dropout"):
                    layers.append(nn.Dropout(spec["dropout"]))
        return nn.Sequential(*layers)
    if kind == "bottleneck":
        return BottleneckHead(
            spec["in_features"], spec["width"], spec["num_classes"], spec.get("dropout", 0.5)
        )
    if kind == "knn":
        return KNNHead(spec["in_features"], spec["num_classes"], spec["bank_size"], spec["k"])
    raise ValueError(f"unknown head type {kind!r}")
