"""Self-training: confident target predictions become pseudo-labels for a cross-entropy term.
Only predictions above the threshold count, so early mistakes are not reinforced."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import AdaptationMethod, DomainBatch, register_method

THRESHOLD = 0.9


@register_method("self-training")
class SelfTraining(AdaptationMethod):
    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        probs = F.softmax(batch.logits_t.detach(), dim=1)
        confidence, pseudo = probs.max(dim=1)
        mask = (confidence >= THRESHOLD).float()
        per_sample = F.cross_entropy(batch.logits_t, pseudo, reduction="none")
        loss = (per_sample * mask).sum() / max(1, len(mask))
        return {"pseudo_loss": self.trade_off * loss, "pseudo_share": mask.mean()}
