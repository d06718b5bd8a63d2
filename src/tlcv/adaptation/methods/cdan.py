"""CDAN (Long et al. 2018): the discriminator sees features conditioned on the predictions
(their outer product), so alignment respects the classes; CDAN+E weights confident samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import AdaptationMethod, DomainBatch, register_method
from .dann import discriminator, domain_loss, reverse_gradient, warm_up

# Above this many outer-product entries, a fixed random multilinear map keeps it affordable.
MAX_OUTER = 4096


def entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * torch.log(probs + 1e-5)).sum(dim=1)


@register_method("cdan")
class CDAN(AdaptationMethod):
    outputs = ("image",)  # reads bottleneck features
    entropy_weighting = False

    def __init__(self, width: int, num_classes: int, trade_off: float = 1.0, out_dim: int = 1024):
        super().__init__(width, num_classes, trade_off)
        self.randomized = width * num_classes > MAX_OUTER
        if self.randomized:
            gen = torch.Generator().manual_seed(0)
            self.register_buffer("rf", torch.randn(width, out_dim, generator=gen))
            self.register_buffer("rg", torch.randn(num_classes, out_dim, generator=gen))
            self.out_dim = out_dim
            in_features = out_dim
        else:
            in_features = width * num_classes
        self.discriminator = discriminator(in_features)

    def condition(self, f: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        if self.randomized:
            return (f @ self.rf) * (probs @ self.rg) / self.out_dim**0.5
        return torch.bmm(probs.unsqueeze(2), f.unsqueeze(1)).flatten(1)

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        f = torch.cat([batch.f_s, batch.f_t])
        probs = F.softmax(torch.cat([batch.logits_s, batch.logits_t]), dim=1).detach()
        h = self.condition(f, probs)
        logits = self.discriminator(reverse_gradient(h, warm_up(batch.progress))).squeeze(1)
        weights = None
        n_s = len(batch.f_s)
        if self.entropy_weighting:
            w = 1.0 + torch.exp(-entropy(probs))
            # Each domain's weights sum to its share of the batch, as in the CDAN+E paper.
            w_s, w_t = w[:n_s], w[n_s:]
            weights = torch.cat([w_s / w_s.sum() * n_s, w_t / w_t.sum() * (len(w) - n_s)])
        loss, accuracy = domain_loss(logits, n_s, weights)
        return {f"{self.name}_loss": self.trade_off * loss, "domain_acc": accuracy.detach()}


@register_method("cdan+e")
class CDANE(CDAN):
    entropy_weighting = True
