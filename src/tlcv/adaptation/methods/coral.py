"""Deep CORAL (Sun & Saenko 2016): match the second-order statistics (covariances) of source
and target features."""

from __future__ import annotations

import torch

from . import AdaptationMethod, DomainBatch, register_method


def covariance(x: torch.Tensor) -> torch.Tensor:
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / max(1, len(x) - 1)


def coral_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The paper's loss: squared Frobenius distance of the covariances over 4 d^2."""
    d = x.shape[1]
    return (covariance(x) - covariance(y)).pow(2).sum() / (4 * d * d)


@register_method("coral")
class CORAL(AdaptationMethod):
    outputs = ("image",)  # reads bottleneck features

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        # Covariance term as in the paper (4x, i.e. mean squared entry difference) plus the
        # means, as TLlib does: the means matter once features pass a ReLU.
        mean_gap = (batch.f_s.mean(0) - batch.f_t.mean(0)).pow(2).mean()
        cov_gap = 4 * coral_distance(batch.f_s, batch.f_t)
        return {"coral_loss": self.trade_off * (mean_gap + cov_gap)}
