"""Self-training: confident target predictions become pseudo-labels for a cross-entropy term.

Classification: predictions above a fixed confidence count, so early mistakes are not
reinforced. Segmentation: class-balanced pseudo-labels (CBST, Zou et al. 2018): a fixed
threshold would keep road and sky pixels and almost no pole or sign pixels, so each class gets
its own threshold, the confidence above which its most confident share of pixels lies. The
share grows from 20% to 50% over training, as CBST's rounds do. Each epoch is a round: the
thresholds come from the model's predictions over the whole target before the epoch (a fixed
sample of pixels of every image), so a class that is rare in one batch keeps its own bar
instead of the batch's few confident pixels setting it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import AdaptationMethod, DomainBatch, register_method

THRESHOLD = 0.9
START_SHARE, END_SHARE = 0.2, 0.5  # CBST's portion p, grown over training


def class_thresholds(probs: torch.Tensor, share: float) -> torch.Tensor:
    """Per class: the (1 - share) quantile of the confidences of the pixels (``probs``: N x C)
    predicted as that class, so the same share of every class passes; 1 for classes nobody
    predicts."""
    confidence, pseudo = probs.max(dim=1)
    thresholds = torch.ones(probs.shape[1], dtype=torch.float32)
    for c in pseudo.unique().tolist():
        thresholds[c] = float(torch.quantile(confidence[pseudo == c].float(), 1.0 - share))
    return thresholds


def class_balanced_pseudo_labels(
    probs: torch.Tensor, share: float, thresholds: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel: the predicted class and whether it is kept (its confidence reaches its
    class's threshold: ``thresholds``, or those of these pixels themselves)."""
    confidence, pseudo = probs.max(dim=1)
    if thresholds is None:
        thresholds = class_thresholds(probs, share)
    return pseudo, confidence >= thresholds.to(confidence.device, confidence.dtype)[pseudo]


@register_method("self-training")
class SelfTraining(AdaptationMethod):
    reads_whole_target = True  # per-pixel: each epoch's thresholds come from the whole target
    thresholds: torch.Tensor | None = None

    def begin_epoch(self, target_probs: torch.Tensor, progress: float) -> None:
        if len(target_probs):
            self.thresholds = class_thresholds(target_probs, self.share(progress))

    @staticmethod
    def share(progress: float) -> float:
        return START_SHARE + (END_SHARE - START_SHARE) * progress

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
        probs = F.softmax(rows.detach(), dim=1)
        pseudo, kept = class_balanced_pseudo_labels(probs, self.share(batch.progress),
                                                     self.thresholds)  # fmt: skip
        per_pixel = F.cross_entropy(rows, pseudo, reduction="none")
        loss = (per_pixel * kept).sum() / kept.sum().clamp(min=1)
        return {"pseudo_loss": self.trade_off * loss, "pseudo_share": kept.float().mean()}
