"""A segmentation run as one ONNX graph: uint8 images (B, 3, H, W), H and W any multiples of
32 (the image resized to the model's scale and padded, as `predict` does), in; class
``logits`` (B, K, H, W) out, the normalisation inside. Resizing to the model's scale and the
scores back to the image's own size stay outside the graph (deploy/runtime.py does both
with Pillow), so one graph serves every image shape. Checked against eager torch on the run's
validation images: mask-pixel agreement and the largest logit difference."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...deploy.engine import OnnxEngine
from ...deploy.export import checked_export, export_graph, run_metadata
from ...errors import TlcvError
from .loading import MULTIPLE

OUTPUTS = ["logits"]
CHECKED_IMAGES = 32


class SegmentationGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        prep = model.backbone.preprocessing
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images.float() - self.mean) / self.std)


def _metadata(run) -> dict:
    meta = run_metadata(run)
    size = int(run.info["head"]["image_size"])
    meta["preprocessing"]["resize_rule"] = (
        f"resize the short side to {size} (antialiased bilinear), pad right and bottom with "
        f"zeros to multiples of {MULTIPLE}; crop the logits back, resize them to the image"
    )
    meta["image_size"] = size
    meta["pad_multiple"] = MULTIPLE
    meta["input"] = f"uint8 RGB (batch, 3, H, W), H and W multiples of {MULTIPLE}"
    meta["outputs"] = {"logits": "class scores per pixel (batch, classes, H, W)"}
    meta["mask_format"] = run.info.get("mask_format")
    return meta


def write_graph(run, path: Path) -> str:
    model = run.load_model()
    size = -(-int(run.info["head"]["image_size"]) // MULTIPLE) * MULTIPLE
    return export_graph(SegmentationGraph(model), path, size, _metadata(run), OUTPUTS, MULTIPLE)


def _splits(root, ignore_index: int = 255) -> dict:
    from .data import discover

    source = discover(root, strict=False, ignore_index=ignore_index)
    return {name: source.splits.get(name) for name in ("val", "test", "train", "all")}


def compare(run, engine: OnnxEngine, items: list) -> dict:
    """Eager logits vs the graph's on each image at the model's scale, padded as predict pads."""
    from .inference import _resized, safe_read
    from .loading import pad_batch

    graph = SegmentationGraph(run.model()).eval()
    size = int(run.info["head"]["image_size"])
    pixels = agree = images = 0
    max_diff = 0.0
    for item in items:
        image, _ = safe_read(item.path)
        if image is None:
            continue
        scaled = _resized(image, size)
        x, _ = pad_batch([scaled], None)
        with torch.inference_mode():
            eager = graph(x).numpy()
        got = engine.run(x.numpy())["logits"]
        h, w = scaled.shape[-2:]
        eager, got = eager[..., :h, :w], got[..., :h, :w]
        max_diff = max(max_diff, float(np.abs(eager - got).max()))
        agree += int((eager.argmax(1) == got.argmax(1)).sum())
        pixels += h * w
        images += 1
    if not images:
        raise TlcvError("none of the check images could be read", hint="pass --data DIR")
    return {"images": images, "pixels": pixels, "mask_pixel_agreement": agree / pixels,
            "max_abs_logit_diff": max_diff}  # fmt: skip


def export_run(run, *, out=None, int8: bool = False, data=None) -> dict:
    """Write the graph, then compare its masks with eager torch on the run's images."""
    if int8:
        raise TlcvError(
            "--int8 is not offered for segmentation runs yet: its accuracy cost would be "
            "measured per pixel, which the int8 check does not do",
            hint="export without --int8",
        )

    def summary(check: dict) -> str:
        return (f"mask pixels agree {100 * check['mask_pixel_agreement']:.3f}%, max |logit "
                f"difference| {check['max_abs_logit_diff']:.2e}")  # fmt: skip

    # the run's own void value (CamVid: 11), or its masks would be refused
    splits = partial(_splits, ignore_index=int(run.config.get("ignore_index", 255)))
    return checked_export(run, out, data, discover=splits, kind="images", limit=CHECKED_IMAGES,
                          write=write_graph, metadata=_metadata(run), compare=compare,
                          summary=summary)  # fmt: skip
