"""Domain-adaptation methods, one file each, registered by name.

A method turns the bottleneck features and logits of a source batch and a target batch into
named loss terms; the engine adds them to the source loss. Methods compose with ``+``
(``dann+mcc``). Adding one is a new file here with ``@register_method("name")``.

A method says which predictions it adapts (``outputs``): "image" batches (a classifier's)
carry features and (B, C) logits, "pixel" batches (B, C, H, W) logits and no features. A method may
also restyle the source images before the forward pass (``source_images``: FDA).
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

    f_s: torch.Tensor | None  # bottleneck features (B_s, F); None for dense tasks
    f_t: torch.Tensor | None  # (B_t, F)
    logits_s: torch.Tensor  # (B_s, C), or (B_s, C, H, W) per pixel for segmentation
    logits_t: torch.Tensor  # (B_t, C) or (B_t, C, H, W)
    progress: float  # fraction of training done, 0..1 (for warm-ups)

    @property
    def dense(self) -> bool:
        return self.logits_t.dim() == 4


class AdaptationMethod(nn.Module):
    """Base: no loss terms. Subclasses may own trainable parts (e.g. a discriminator)."""

    name = "source-only"
    # True: after training, batch-norm statistics are re-estimated on the target (AdaBN).
    recalibrates_bn = False
    # the predictions whose batches this method understands: one per "image", or per "pixel"
    outputs: tuple[str, ...] = ("image", "pixel")

    def __init__(self, width: int, num_classes: int, trade_off: float = 1.0):
        super().__init__()
        self.width, self.num_classes, self.trade_off = width, num_classes, trade_off

    def loss(self, batch: DomainBatch) -> dict[str, torch.Tensor]:
        return {}

    def source_images(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The source images (uint8, B x 3 x H x W) as training sees them; unchanged here."""
        return source


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
    spec: str, width: int, num_classes: int, trade_off: float = 1.0, outputs: str = "image"
) -> list[AdaptationMethod]:
    """The methods of ``spec``, each checked to adapt per-``outputs`` predictions."""
    names = check_methods(spec, outputs)
    return [
        METHODS.get(name)(width, num_classes, trade_off) for name in names if name != "source-only"
    ]


def check_methods(spec: str, outputs: str = "image") -> list[str]:
    """The method names of ``spec``; one that does not adapt per-``outputs`` predictions
    is refused with the names of those that do."""
    names = parse_methods(spec)
    for name in names:
        supported = METHODS.get(name).outputs
        if outputs not in supported:
            raise TlcvError(
                f"{name} does not adapt per-{outputs} predictions",
                hint=f"methods that do: {', '.join(methods_for(outputs))}",
            )
    return names


def methods_for(outputs: str) -> list[str]:
    """The methods that adapt per-``outputs`` ("image" or "pixel") predictions."""
    return [name for name, cls in METHODS.items() if outputs in cls.outputs]


def available_methods() -> list[str]:
    return METHODS.names()
