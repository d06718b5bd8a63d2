"""DAN (Long et al. 2015): multi-kernel maximum mean discrepancy between source and target, on
the bottleneck features and on the class predictions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import AdaptationMethod, DomainBatch, register_method

BANDWIDTH_MULTIPLIERS = (0.125, 0.25, 0.5, 1.0, 2.0)


def mk_mmd(x: torch.Tensor, y: torch.Tensor, multipliers=BANDWIDTH_MULTIPLIERS) -> torch.Tensor:
    """Squared MMD with a sum of Gaussian kernels whose bandwidths scale the mean distance.

    The biased estimate: exactly 0 when ``x`` and ``y`` are the same sample.
    """
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    base = d2.detach().mean().clamp_min(1e-8)
    kernel = sum(torch.exp(-d2 / (base * m)) for m in multipliers)
    n = len(x)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


@register_method("dan")
class DAN(AdaptationMethod):
    """Matching the class predictions as well as the features: the best DAN on Office-31's
    balanced tasks, the worst method when the target's class mix differs from the source's
    (it pulls the target predictions to the source's mix; docs/benchmarks.md, label shift)."""

    outputs = ("image",)  # reads bottleneck features

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        mmd = mk_mmd(batch.f_s, batch.f_t) + mk_mmd(
            F.softmax(batch.logits_s, dim=1), F.softmax(batch.logits_t, dim=1)
        )
        return {"mmd_loss": self.trade_off * mmd}


@register_method("dan-features")
class DANFeatures(AdaptationMethod):
    """DAN as TLlib runs it: MK-MMD on the bottleneck features only. Matching the class
    predictions too (``dan``) pulls the target's predicted class mix towards the source's,
    which can collapse the target predictions when the two domains' class mixes differ."""

    outputs = ("image",)  # reads bottleneck features

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        return {"mmd_loss": self.trade_off * mk_mmd(batch.f_s, batch.f_t)}
