"""The one backbone registry: name -> constructor, weights, preprocessing, feature size, groups.

Like timm's ``register_model`` and torchvision's weights enums, a spec carries everything
downstream code needs, so nothing guesses input sizes or normalisation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from torch import nn

from ..errors import TlcvError
from ..registry import Registry


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``resize_size``, centre-crop ``input_size``, normalise."""

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def at_size(self, size: int) -> Preprocessing:
        """Same crop ratio and normalisation at another input size (``--image-size``)."""
        crop_pct = self.input_size / self.resize_size
        return replace(self, input_size=int(size), resize_size=int(round(size / crop_pct)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(
            input_size=int(data["input_size"]),
            resize_size=int(data["resize_size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            interpolation=str(data.get("interpolation", "bilinear")),
        )


@dataclass(frozen=True)
class WeightsInfo:
    """Where a backbone's pretrained weights come from, in the order they are tried."""

    tag: str
    url: str | None = None
    # A file shipped inside an installed Python package (works offline on a fresh machine).
    bundled: Callable[[], Path | None] | None = None
    # Maps a foreign state dict onto the model's own key names (e.g. older exports).
    remap: Callable[[dict, dict], dict] | None = None
    # timm checkpoints are fetched by timm itself (HF hub cache, then download).
    via_timm: bool = False
    # Preprocessing these weights were trained with, when it differs from the spec's default.
    preprocessing: Preprocessing | None = None

    @property
    def file_name(self) -> str | None:
        return self.url.rsplit("/", 1)[-1] if self.url else None


@dataclass(frozen=True)
class LayerGroup:
    """An ordered slice of the network (stem ... last stage) for freezing and per-layer LRs."""

    name: str
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[], nn.Module]  # full ImageNet architecture, random init, no download
    strip_head: Callable[[nn.Module], nn.Module]  # drop the 1000-way classifier -> (B, D)
    feature_dim: int
    preprocessing: Preprocessing
    weights: tuple[WeightsInfo, ...]  # preferred first; empty when none exist
    layer_groups: Callable[[nn.Module], list[LayerGroup]]
    family: str = "torchvision"
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    # The module whose activations class-activation maps are read from (the end of the last
    # convolutional stage, before pooling): `tlcv explain` never guesses per call. Empty for
    # backbones without one (hand-crafted features).
    cam_layer: str = ""


BACKBONES: Registry[BackboneSpec] = Registry(
    "backbone", hint="or any timm model as timm:<name> (see `tlcv models`)"
)
_DYNAMIC: list[tuple[str, Callable[[str], BackboneSpec]]] = []


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    for key in (spec.name, *spec.aliases):
        BACKBONES.add(key, spec)
    return spec


def register_prefix(prefix: str, factory: Callable[[str], BackboneSpec]) -> None:
    """Names like ``timm:<model>`` resolve through a factory instead of a fixed entry."""
    _DYNAMIC.append((prefix, factory))


def list_backbones() -> list[str]:
    """Registered names, aliases left out."""
    return sorted({spec.name for _, spec in BACKBONES.items()})


def get_backbone_spec(name: str) -> BackboneSpec:
    for prefix, factory in _DYNAMIC:
        if name.startswith(prefix):
            return factory(name[len(prefix) :])
    return BACKBONES.get(name)


MIN_IMAGE_SIZE = 16
MAX_IMAGE_SIZE = 4096


def check_image_size(size: int | None) -> None:
    """Refuse input sizes no network can use, or whose activations would not fit in memory
    (a 100000-px request once ran the machine out of memory with no message)."""
    if size is None:
        return
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_IMAGE_SIZE:
        raise TlcvError(
            f"--image-size {size!r} is not a usable input size",
            hint=f"give a whole number of pixels, at least {MIN_IMAGE_SIZE} (e.g. 224, 96, 32)",
        )
    limit = MAX_IMAGE_SIZE
    try:  # one image's float activations (~30 copies of the input) within half the memory
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        limit = min(limit, int((memory / 2 / (3 * 4 * 30)) ** 0.5))
    except (ValueError, OSError, AttributeError):
        pass
    if size > limit:
        raise TlcvError(
            f"--image-size {size} is too large for this machine (at most {limit} px here)",
            hint="CNN backbones work best near their own size (224 for most); tile or "
            "downscale very large images",
        )


def assign_groups(model: nn.Module, groups: list[LayerGroup]) -> list[tuple[str, list[str]]]:
    """Parameter names per layer group, in order; every trainable parameter lands in one group."""
    out: list[tuple[str, list[str]]] = [(g.name, []) for g in groups]
    leftover: list[str] = []
    for pname, _ in model.named_parameters():
        for idx, group in enumerate(groups):
            if any(pname == p or pname.startswith(p + ".") for p in group.prefixes):
                out[idx][1].append(pname)
                break
        else:
            leftover.append(pname)
    if leftover:
        raise RuntimeError(f"parameters outside every layer group: {leftover[:5]}")
    return [(name, names) for name, names in out if names]


def sequential_groups(prefix: str, bounds: list[int], names: list[str]) -> list[LayerGroup]:
    """Cut ``prefix`` (an nn.Sequential) at index ``bounds`` into named groups."""
    groups = []
    for name, start, stop in zip(names, bounds[:-1], bounds[1:], strict=True):
        groups.append(LayerGroup(name, tuple(f"{prefix}.{i}" for i in range(start, stop))))
    return groups


def natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]
