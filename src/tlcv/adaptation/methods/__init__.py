"""Domain-adaptation methods, one file each, registered by name.

A method turns the bottleneck features and logits of a source batch and a target batch into
named loss terms; the engine adds them to the source cross-entropy. Methods compose with ``+``
(``dann+mcc``). Adding one is a new file here with ``@register_method("name")``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import TlcvError


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


METHODS: dict[str, type[AdaptationMethod]] = {"source-only": AdaptationMethod}


def register_method(name: str):
    def wrap(cls: type[AdaptationMethod]) -> type[AdaptationMethod]:
        if name in METHODS:
            raise ValueError(f"adaptation method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return wrap


def _load_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def parse_methods(spec: str) -> list[str]:
    """``dann+mcc`` -> ["dann", "mcc"]; ``cdan+e`` stays one method (entropy-weighted CDAN)."""
    _load_all()
    names: list[str] = []
    for token in (t.strip().lower() for t in spec.split("+")):
        if token == "e" and names and names[-1] == "cdan":
            names[-1] = "cdan+e"
            continue
        if token not in METHODS:
            raise TlcvError(
                f"unknown adaptation method {token!r} in {spec!r}",
                hint=f"choose from: {', '.join(sorted(METHODS))}; combine with + (e.g. dann+mcc)",
            )
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
        METHODS[name](width, num_classes, trade_off)
        for name in parse_methods(spec)
        if name != "source-only"
    ]


def available_methods() -> list[str]:
    _load_all()
    return sorted(METHODS)
