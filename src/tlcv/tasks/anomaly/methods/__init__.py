"""Anomaly methods: how defect-free patch features become a model that scores new patches.

One file per method, registered with ``@METHODS.register(name)`` on an ``AnomalyMethod``
subclass (an ``nn.Module`` whose buffers are everything it learned, so the run folder's
safetensors file and the ONNX graph carry them). The contract:

  strides, pool, upsample   which backbone maps it reads by default, the local neighbourhood
                            averaged around each patch (1: none), how deeper maps are brought
                            to the first map's grid
  fit(batches, options, seed) -> (method, spec, notes)
                            learn from embeddings (B, C, h, w) of good images, streamed
  rebuild(spec)             the method with empty buffers of the recorded shapes (to load)
  forward(embedding)        -> (patch scores (B, h, w), image scores (B,) or None: the
                            smoothed map's maximum)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import torch
from torch import nn

from ....registry import Registry, import_submodules

METHODS: Registry[type[AnomalyMethod]] = Registry(
    "anomaly method", load=import_submodules(__name__, __path__)
)


class AnomalyMethod(nn.Module):
    strides: ClassVar[tuple[int, ...]] = (8, 16)
    pool: ClassVar[int] = 3
    upsample: ClassVar[str] = "bilinear"

    @classmethod
    def fit(
        cls, batches: Iterable[torch.Tensor], options: dict, seed: int
    ) -> tuple[AnomalyMethod, dict, list[str]]:
        raise NotImplementedError

    @classmethod
    def rebuild(cls, spec: dict) -> AnomalyMethod:
        raise NotImplementedError

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError
