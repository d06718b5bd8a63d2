"""Self-training: confident target predictions become pseudo-labels for a cross-entropy term.

Classification: predictions above a fixed confidence count, so early mistakes are not
reinforced. Segmentation: class-balanced pseudo-labels (CBST, Zou et al. 2018): a fixed
threshold would keep road and sky pixels and almost no pole or sign pixels, so each class gets
its own threshold, the confidence above which its most confident share of pixels lies. The
share grows from 20% to 50% over training, as CBST's rounds do; thresholds are computed per
batch (one pass, no separate labelling round).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import AdaptationMethod, DomainBatch, register_method

THRESHOLD = 0.9
START_SHARE, END_SHARE = 0.2, 0.5  # CBST's portion p, grown over training


def class_balanced_pseudo_labels(
    probs: torch.Tensor, share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel (``probs``: N x C): the predicted class and whether it is kept. A pixel is
    kept when its confidence reaches its class's threshold: the (1 - share) quantile of the
    confidences of the pixels predicted as that class (the same share of every class)."""
    confidence, pseudo = probs.max(dim=1)
    thresholds = torch.ones(probs.shape[1], dtype=confidence.dtype)
    for c in pseudo.unique().tolist():
        mine = confidence[pseudo == c]
        thresholds[c] = float(torch.quantile(mine.float(), 1.0 - share))
    return pseudo, confidence >= thresholds.to(confidence.device)[pseudo]


@register_method("self-training")
class SelfTraining(AdaptationMethod):
    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        if batch.dense:
            return self._dense(batch)
        probs = F.softmax(batch.logits_t.detach(), dim=1)
        confidence, pseudo = probs.max(dim=1)
        mask = (confidence >= THRESHOLD).float()
        per_sample = F.cross_entropy(batch.logits_t, pseudo, reduction="none")
        loss = (per_sample * mask).sum() / max(1, len(mask))
        return {"pseudo_loss": self.trade_off * loss, "pseudo_share": mask.mean()}

    def _dense(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        logits = batch.logits_t.float()
        rows = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
        share = START_SHARE + (END_SHARE - START_SHARE) * batch.progress
        pseudo, kept = class_balanced_pseudo_labels(F.softmax(rows.detach(), dim=1), share)
        per_pixel = F.cross_entropy(rows, pseudo, reduction="none")
        loss = (per_pixel * kept).sum() / kept.sum().clamp(min=1)
        return {"pseudo_loss": self.trade_off * loss, "pseudo_share": kept.float().mean()}
