"""Start a detector from torchvision's COCO-trained weights (``--detector-weights coco|FILE``).

tlcv's ``fasterrcnn``, ``retinanet`` and ``fcos`` on the registry's ``resnet50`` have exactly the
layout of torchvision's ``*_resnet50_fpn`` detectors (ResNet stages -> FPN -> heads), so their
COCO weights load tensor for tensor: the ResNet body into the encoder (which keeps the freeze
schedules and the reduced learning rate of the pretrained part), the FPN, RPN and heads into the
detector. The layers sized by COCO's 91 classes are re-sized to the user's classes (left at their
fresh initialisation). Loading never executes code from the file (weights_only / safetensors).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...backbones.weights import _download, hub_checkpoint_dir, read_state_dict
from ...errors import TlcvError

BACKBONE = "resnet50"
# tlcv detector -> (torchvision's COCO-trained model of the same layout, its weights enum)
COCO_MODELS = {
    "fasterrcnn": ("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights"),
    "retinanet": ("retinanet_resnet50_fpn", "RetinaNet_ResNet50_FPN_Weights"),
    "fcos": ("fcos_resnet50_fpn", "FCOS_ResNet50_FPN_Weights"),
}
BODY = "backbone.body."


def check_coco_choice(detector: str, backbone: str, strategy: str) -> None:
    """One-line errors for combinations COCO weights cannot serve."""
    if detector not in COCO_MODELS:
        raise TlcvError(
            f"--detector-weights: torchvision has no COCO-trained {detector} of this layout",
            hint=f"use --detector {', '.join(COCO_MODELS)} with --backbone {BACKBONE}",
        )
    if backbone != BACKBONE:
        raise TlcvError(
            f"--detector-weights: torchvision's COCO-trained {COCO_MODELS[detector][0]} is "
            f"built on {BACKBONE}, not {backbone}",
            hint=f"add --backbone {BACKBONE}",
        )
    if strategy == "scratch":
        raise TlcvError(
            "--detector-weights and --strategy scratch contradict each other",
            hint="use finetune (all layers learn) or features (the encoder stays frozen)",
        )


def coco_file(detector: str, source: str) -> Path:
    """``coco``: torchvision's published file (torch hub cache, else downloaded once); or FILE."""
    if source != "coco":
        if not Path(source).is_file():
            raise TlcvError(
                f"--detector-weights: no file {source}",
                hint="give the path of a torchvision detector's state dict, or coco",
            )
        return Path(source)
    import torchvision.models.detection as tv_detection

    name, enum = COCO_MODELS[detector]
    url = getattr(tv_detection, enum).COCO_V1.url
    dest = hub_checkpoint_dir() / url.rsplit("/", 1)[-1]
    if not dest.is_file():
        _download(url, dest, f"{name} (COCO)", flag="--detector-weights")
    return dest


def load_coco(model, detector: str, source: str) -> tuple[str, list[str]]:
    """Copy a torchvision COCO detector's tensors into ``model`` (a DetectionModel); returns the
    file used and the names of the class-sized layers left fresh for the user's classes."""
    file = coco_file(detector, source)
    state = read_state_dict(file)
    body = {k[len(BODY) :]: v for k, v in state.items() if k.startswith(BODY)}
    rest = {k: v for k, v in state.items() if not k.startswith(BODY)}
    own_body = model.backbone.net.state_dict()
    own_head = model.head.state_dict()
    wrong = [k for k in body if k not in own_body] + [
        k for k in own_body if k not in body and not k.endswith("num_batches_tracked")
    ]
    wrong += [k for k in rest if k not in own_head] + [k for k in own_head if k not in rest]
    if wrong:
        raise TlcvError(
            f"{file} is not a state dict of torchvision's {COCO_MODELS[detector][0]} "
            f"(e.g. {', '.join(wrong[:3])} do not match)",
            hint="give the COCO weights of that model, or --detector-weights coco",
            path=str(file),
        )
    fresh = [k for k, v in rest.items() if own_head[k].shape != v.shape]
    with torch.no_grad():
        model.backbone.net.load_state_dict(body, strict=False)  # BN step counters stay
        model.head.load_state_dict({k: v for k, v in rest.items() if k not in fresh}, strict=False)
    return str(file), fresh
