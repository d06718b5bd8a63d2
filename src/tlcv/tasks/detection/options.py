"""Options only detection runs take (`tlcv train --task detection --help` groups them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import TlcvError
from ...options import Validated, panel_options

DETECTORS = ("fasterrcnn", "retinanet", "fcos", "ssdlite")  # model.py registers one each
option = panel_options("Detection (--task detection)")


@dataclass
class DetectionOptions(Validated):
    detector: str = option(
        "fasterrcnn",
        "fasterrcnn (FPN), retinanet, fcos or ssdlite (torchvision) on the backbone's pyramid.",
        choices=DETECTORS,
    )
    anchor_sizes: str = option(
        "16,32,64,128,256", "Anchor size (px) per pyramid level, smallest first."
    )
    detector_weights: str | None = option(
        None,
        "Start the whole detector (encoder, FPN, heads) from torchvision's COCO-trained "
        "weights: coco (downloaded once, then cached) or FILE (that model's state dict); "
        "fasterrcnn, retinanet or fcos with --backbone resnet50; the class layers are re-sized "
        "to your classes. Otherwise only the encoder is pretrained (--weights).",
    )
    train_crop: int | None = option(
        None,
        "Train on N x N crops of each scene at the --image-size scale (half of them around an "
        "object), so small objects keep their pixels at a fraction of the cost; validation and "
        "prediction see whole images.",
    )
    fpn_channels: int = option(
        256, "Width of the feature pyramid and heads (128 or 96: faster on CPUs)."
    )
    class_map: str | None = option(
        None, "CSV from,to mapping class ids/names to coarser classes (empty: drop)."
    )
    allow_outside_data: bool = option(
        False,
        "Use images the annotations place outside the data folder (absolute paths, '..', "
        "links leading out); by default each is named in skipped.csv and left out.",
    )

    def check(self) -> None:
        if self.train_crop is not None and self.train_crop < 32:
            raise TlcvError("--train-crop must be at least 32 pixels")
        if self.detector == "ssdlite" and self.batch_size < 2:  # type: ignore[attr-defined]
            raise TlcvError(
                "ssdlite needs --batch-size 2 or more: its smallest maps are 1 x 1, and "
                "batch norm needs two values a channel"
            )
        if self.train_crop is not None and self.detector == "ssdlite":
            raise TlcvError(
                "--train-crop does not suit ssdlite: its default boxes are fractions of its "
                "fixed input, so crops would teach other sizes; train it on whole images"
            )
        if self.fpn_channels < 64 or self.fpn_channels % 32:
            # FCOS normalises in 32 groups: at 32 channels a group of the 1 x 1 top level holds
            # one value, and group norm cannot train on it
            raise TlcvError(
                "--fpn-channels: a multiple of 32, at least 64 (FCOS normalises in 32 groups)"
            )
