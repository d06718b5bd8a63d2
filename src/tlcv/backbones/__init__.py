"""Backbones: build a registry entry with weights, headless, ready to give (B, D) features."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..catalog import DEFAULT_BACKBONE
from . import classical, small_zoo, timm_zoo, torchvision_zoo  # noqa: F401  (register)
from .registry import (
    BackboneSpec,
    LayerGroup,
    Preprocessing,
    assign_groups,
    check_image_size,
    get_backbone_spec,
    list_backbones,
    register_backbone,
    register_prefix,
)
from .weights import (
    import_checkpoint,
    load_strict,
    load_timm_pretrained,
    read_state_dict,
    resolve_weights_file,
    weights_available_locally,
    weights_info_for_file,
)

PRETRAINED = "imagenet"
RANDOM = "none"


class Backbone(nn.Module):
    """A headless network: images (B, 3, H, W) -> pooled features (B, feature_dim)."""

    def __init__(
        self,
        spec: BackboneSpec,
        net: nn.Module,
        preprocessing: Preprocessing,
        weights_id: str,
        weights_source: str,
    ):
        super().__init__()
        self.spec = spec
        self.net = net
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.weights_source = weights_source

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def layer_groups(self) -> list[tuple[str, list[str]]]:
        """Ordered (group name, parameter names of ``self.net``): stem first, last stage last."""
        return assign_groups(self.net, self.spec.layer_groups(self.net))


def state_fingerprint(module: nn.Module) -> str:
    """Content hash of a module's tensors: the identity of its weights for caches and runs."""
    digest = hashlib.blake2b(digest_size=16)
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def create_backbone(
    name: str = DEFAULT_BACKBONE,
    weights: str | Path | None = PRETRAINED,
    image_size: int | None = None,
    seed: int = 0,
) -> Backbone:
    """Build ``name`` with ``weights`` = "imagenet" (default source), "none" (random) or a file.

    ``seed`` fixes the random initialisation (what "none" gives, and any new layers).
    A file is checked strictly against the full ImageNet architecture before the classifier is
    dropped, so a checkpoint for the wrong network fails loudly instead of half-loading.
    """
    check_image_size(image_size)
    spec = get_backbone_spec(name)
    # Random initialisation is seeded: every torchrun rank and every rerun builds the same net.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = spec.build()
    weights = PRETRAINED if weights is None else weights
    prep = spec.preprocessing
    if str(weights) == RANDOM:
        source = "random"
    elif str(weights) == PRETRAINED and spec.weights and spec.weights[0].via_timm:
        source = load_timm_pretrained(net, spec)
    else:
        if str(weights) == PRETRAINED:
            path, info = resolve_weights_file(spec)
        else:
            path = Path(weights)
            info = weights_info_for_file(spec, path)
        state = read_state_dict(path)
        remap = next((w.remap for w in spec.weights if w.remap is not None), None)
        if remap is not None:
            state = remap(state, net.state_dict())
        load_strict(net, state, str(path))
        source = str(path)
        if info is not None and info.preprocessing is not None:
            prep = info.preprocessing
    net = spec.strip_head(net)
    if image_size is not None:
        prep = prep.at_size(image_size)
    return Backbone(spec, net.eval(), prep, state_fingerprint(net), source)


def rebuild_backbone(name: str, preprocessing: Preprocessing) -> Backbone:
    """The architecture of a saved run, without fetching any weights (they come from the run)."""
    spec = get_backbone_spec(name)
    net = spec.strip_head(spec.build())
    return Backbone(spec, net.eval(), preprocessing, "", "run")


def count_parameters(spec: BackboneSpec) -> int:
    with torch.device("meta"):
        net = spec.strip_head(spec.build())
    return sum(p.numel() for p in net.parameters())


__all__ = [
    "Backbone",
    "BackboneSpec",
    "DEFAULT_BACKBONE",
    "LayerGroup",
    "Preprocessing",
    "count_parameters",
    "create_backbone",
    "get_backbone_spec",
    "import_checkpoint",
    "list_backbones",
    "read_state_dict",
    "rebuild_backbone",
    "register_backbone",
    "register_prefix",
    "state_fingerprint",
    "weights_available_locally",
]
