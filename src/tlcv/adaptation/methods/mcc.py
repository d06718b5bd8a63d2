"""MCC (Jin et al. 2020): minimum class confusion. Penalise target predictions that mix classes,
with temperature scaling and entropy-based weights; needs no discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import AdaptationMethod, DomainBatch, register_method


def class_confusion(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    probs = F.softmax(logits / temperature, dim=1)
    entropy = -(probs * torch.log(probs + 1e-5)).sum(dim=1).detach()
    weights = 1.0 + torch.exp(-entropy)
    weights = (len(probs) * weights / weights.sum()).unsqueeze(1)
    confusion = (probs * weights).T @ probs
    confusion = confusion / confusion.sum(dim=1, keepdim=True)
    return (confusion.sum() - confusion.trace()) / probs.shape[1]


@register_method("mcc")
class MCC(AdaptationMethod):
    outputs = ("image",)  # one prediction per image

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        return {"mcc_loss": self.trade_off * class_confusion(batch.logits_t)}
