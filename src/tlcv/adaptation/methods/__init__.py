"""Domain-adaptation methods, one file each, registered by name.

A method turns the bottleneck features and logits of a source batch and a target batch into
named loss terms; the engine adds them to the source cross-entropy. Methods compose with ``+``
(``dann+mcc``). Adding one is a new file here with ``@register_method("name")``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import TlcvError
from ...registry import Registry, import_submodules


@dataclass
class DomainBatch:
    """What a method sees of one training step (source first, target second)."""

    f_s: torch.Tensor  # bottleneck features (B_s, F)
    f_t: torch.Tensor  # (B_t, F)
    logits_s: torch.Tensor  # (B_s, C)
    logits_t: torch.Tensor  # (B_t, C)
    progress: float  # fraction of training done, 0..1 (for warm-ups)


class AdaptationMethod(nn.Module):
    """Base: no loss terms. Subclasses may own trainable parts (e.g. a discriminator)."""

    name = "source-only"
    # True: after training, batch-norm statistics are re-estimated on the target (AdaBN).
    recalibrates_bn = False

    def __init__(self, width: int, num_classes: int, trade_off: float = 1.0):
        super().__init__()
        self.width, self.num_classes, self.trade_off = width, num_classes, trade_off

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        return {}


METHODS: Registry[type[AdaptationMethod]] = Registry(
    "adaptation method",
    load=import_submodules(__name__, __path__),  # one file per method
    hint="combine with + (e.g. dann+mcc)",
)
METHODS.add("source-only", AdaptationMethod)


def register_method(name: str):
    def wrap(cls: type[AdaptationMethod]) -> type[AdaptationMethod]:
        cls.name = name
        return METHODS.add(name, cls)

    return wrap


def parse_methods(spec: str) -> list[str]:
    """``dann+mcc`` -> ["dann", "mcc"]; ``cdan+e`` stays one method (entropy-weighted CDAN)."""
    names: list[str] = []
    for token in (t.strip().lower() for t in spec.split("+")):
        if token == "e" and names and names[-1] == "cdan":
            names[-1] = "cdan+e"
            continue
        METHODS.get(token)  # one line listing the registered methods if unknown
        names.append(token)
    if len(names) > 1 and "source-only" in names:
        raise TlcvError("source-only cannot be combined with other methods")
    if len(set(names)) != len(names):
        raise TlcvError(f"a method is repeated in {spec!r}")
    return names


def build_methods(
    spec: str, width: int, num_classes: int, trade_off: float = 1.0
) -> list[AdaptationMethod]:
    return [
        METHODS.get(name)(width, num_classes, trade_off)
        for name in parse_methods(spec)
        if name != "source-only"
    ]


def available_methods() -> list[str]:
    return METHODS.names()
