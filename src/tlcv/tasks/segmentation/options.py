"""Options only segmentation runs take (`tlcv train --task segmentation --help` groups them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...options import Validated, panel_options

DECODERS = ("unet", "fpn", "lraspp")  # model.py registers one builder each (a test compares)
CLASS_WEIGHTINGS = ("none", "median-frequency")
FLIPS = ("h", "hv")
LOSSES = ("ce", "dice", "dice+ce")  # objective.py: cross-entropy, smp's Dice loss, their sum
option = panel_options("Segmentation (--task segmentation)")


@dataclass
class SegmentationOptions(Validated):
    decoder: str = option(
        "fpn",
        "unet, fpn (smp) or lraspp (torchvision) decoder on the backbone's pyramid.",
        choices=DECODERS,
    )
    ignore_index: int = option(255, "Mask value of void pixels (ignored), besides rows named void.")
    class_weighting: str = option(
        "none",
        "none or median-frequency (SegNet's class-balanced cross-entropy).",
        choices=CLASS_WEIGHTINGS,
    )
    loss: str = option(
        "ce",
        "ce (cross-entropy), dice (smp's soft Dice) or dice+ce (their sum: Dice for small "
        "lesions, cross-entropy for stable gradients).",
        choices=LOSSES,
    )
    flips: str = option(
        "h",
        "Training flips: h (mirror, for scenes with an up: streets) or hv (also upside down and "
        "quarter turns: endoscopy, microscopy, aerial images).",
        choices=FLIPS,
    )
