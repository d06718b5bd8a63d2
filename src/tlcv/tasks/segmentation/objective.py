"""Per-pixel loss and validation for the one training engine (engine/module.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex

from ...engine.module import Objective
from .data import IGNORE


class SegmentationObjective(Objective):
    """``loss``: cross-entropy over labelled pixels (void ignored, optionally class-weighted),
    smp's soft Dice loss, or both summed."""

    def __init__(
        self, num_classes: int, class_weights: torch.Tensor | None = None, loss: str = "ce"
    ):
        super().__init__(label_smoothing=0.0)
        self.class_weights = class_weights
        self.cross_entropy = "ce" in loss.split("+")
        self.dice = None
        if "dice" in loss.split("+"):
            from segmentation_models_pytorch.losses import DiceLoss

            self.dice = DiceLoss("multiclass", ignore_index=IGNORE)
        self.metrics["val_miou"] = MulticlassJaccardIndex(num_classes, ignore_index=IGNORE)

    def forward(self, module, batch):
        x, y, bad = batch
        module.skipped.extend(bad)
        if len(x) == 0 or not bool((y != IGNORE).any()):
            return None, None  # nothing labelled to learn from
        return module.model(module.normalize_images(x)), y.to(module.device)

    def loss(self, module, batch):
        logits, y = self.forward(module, batch)
        if logits is None:
            return None, None, None, {}
        return self.pixel_loss(logits, y), logits, y, {}

    def pixel_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.cross_entropy:
            weight = None if self.class_weights is None else self.class_weights.to(logits.device)
            loss = loss + F.cross_entropy(logits.float(), y, weight=weight, ignore_index=IGNORE)
        if self.dice is not None:
            loss = loss + self.dice(logits.float(), y)
        return loss

    def validate(self, module, batch, dataloader_idx: int = 0) -> None:
        logits, y = self.forward(module, batch)
        if logits is None:
            return
        loss = F.cross_entropy(logits.float(), y, ignore_index=IGNORE)
        module.log(
            "val_loss",
            loss,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            sync_dist=True,
            add_dataloader_idx=False,
        )
        predicted = logits.argmax(1)
        module.val_acc.update(predicted, y)
        module.log(
            "val_acc", module.val_acc, on_epoch=True, batch_size=len(y), add_dataloader_idx=False
        )
        miou = self.metrics["val_miou"]
        miou.update(predicted, y)
        module.log(
            "val_miou",
            miou,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(y),
            add_dataloader_idx=False,
        )


def median_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """SegNet's median frequency balancing: weight_c = median(freq) / freq_c (absent classes 0)."""
    freq = counts.double() / counts.sum().clamp(min=1)
    present = freq > 0
    weights = torch.zeros_like(freq)
    weights[present] = freq[present].median() / freq[present]
    return weights.float()
