"""A detection run as one ONNX graph: one uint8 image (1, 3, H, W) of any size in; ``boxes``
(N, 4, in the image's pixels), ``labels`` (N, 1..K) and ``scores`` (N) out. torchvision's
resizing, normalisation, box decoding and non-maximum suppression are inside.

Exporter: torch's TorchScript exporter, for all four detectors (Faster R-CNN, RetinaNet,
FCOS, SSDlite). The dynamo exporter fails on each of them: their post-processing branches
on the number of boxes found, which torch.export cannot trace (measured with torch 2.14).
Checked against eager torch on the run's validation images: boxes matched by class and
IoU >= 0.99 (or corners within half a pixel, for boxes clipped to zero width at the edge),
and the largest score difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...deploy.engine import OnnxEngine
from ...deploy.export import checked_export, export_graph, run_metadata
from ...errors import TlcvError

OUTPUTS = ["boxes", "labels", "scores"]
CHECKED_IMAGES = 16
MATCH_IOU = 0.99
MATCH_PIXELS = 0.5


class DetectionGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        (found,) = self.model([images[0].float() / 255.0])
        return found["boxes"], found["labels"], found["scores"]


def _metadata(run) -> dict:
    meta = run_metadata(run)
    meta["preprocessing"]["resize_rule"] = "none: the graph resizes (torchvision's transform)"
    meta["input"] = "uint8 RGB (1, 3, H, W), one image of any size"
    meta["outputs"] = {"boxes": "(N, 4) x1, y1, x2, y2 in the input's pixels",
                       "labels": "(N,) class index + 1 (0 is background)",
                       "scores": "(N,) confidence"}  # fmt: skip
    return meta


def write_graph(run, path: Path) -> str:
    graph = DetectionGraph(run.load_model())
    axes = {name: {0: "objects"} for name in OUTPUTS}
    size = int(run.info["head"].get("image_size", 512))
    return export_graph(graph, path, size, _metadata(run), OUTPUTS, spatial=32, output_axes=axes)


def _splits(root) -> dict:
    from .data import discover

    source = discover(root, strict=False)
    return {name: source.splits.get(name) for name in ("val", "test", "train", "all")}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of x1y1x2y2 boxes."""
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match_boxes(eager: dict, got: dict) -> tuple[int, float]:
    """(eager boxes the graph found again: same class, IoU >= MATCH_IOU, or every corner
    within MATCH_PIXELS: a box clipped to zero width at the image's edge has no IoU; largest
    score difference among them)."""
    if not len(eager["boxes"]) or not len(got["boxes"]):
        return 0, 0.0
    iou = box_iou(eager["boxes"], got["boxes"])
    near = np.abs(eager["boxes"][:, None, :] - got["boxes"][None, :, :]).max(2) <= MATCH_PIXELS
    iou[near] = 1.0
    iou[eager["labels"][:, None] != got["labels"][None, :]] = 0
    valid = iou >= MATCH_IOU
    gap = np.abs(eager["scores"][:, None] - got["scores"][None, :])  # duplicates: the nearest
    gap[~valid] = np.inf
    hit = valid.any(1)
    diff = gap.min(1)[hit]
    return int(hit.sum()), float(diff.max()) if len(diff) else 0.0


def compare(run, engine: OnnxEngine, items: list) -> dict:
    from .evaluate import _read, detect

    model = run.model()
    images = eager_boxes = matched = graph_boxes = 0
    max_diff = 0.0
    for item in items:
        try:
            image = _read(item.path)
        except TlcvError:
            continue
        eager = {k: v.numpy() for k, v in detect(model, image, torch.device("cpu")).items()}
        got = engine.run(image[None].numpy())
        hit, diff = match_boxes(eager, got)
        images, eager_boxes, graph_boxes = images + 1, eager_boxes + len(eager["boxes"]), \
            graph_boxes + len(got["boxes"])  # fmt: skip
        matched, max_diff = matched + hit, max(max_diff, diff)
    return {"images": images, "eager_boxes": eager_boxes, "graph_boxes": graph_boxes,
            "box_match": matched / eager_boxes if eager_boxes else None,
            "max_abs_score_diff": max_diff,
            "match_rule": f"same class, IoU >= {MATCH_IOU} or corners within "
                          f"{MATCH_PIXELS} px"}  # fmt: skip


def export_run(run, *, out=None, int8: bool = False, data=None) -> dict:
    """Write the graph, then match its boxes with eager torch's on the run's images."""
    if int8:
        raise TlcvError("--int8 is not offered for detection runs", hint="export without --int8")

    def summary(check: dict) -> str:
        found = ("no boxes to match (the model found none)" if check["box_match"] is None
                 else f"{100 * check['box_match']:.2f}% of {check['eager_boxes']} boxes "
                 f"matched ({check['match_rule']})")  # fmt: skip
        return f"{found}, max |score difference| {check['max_abs_score_diff']:.2e}"

    metadata = {"detector": run.info["head"].get("detector"), **_metadata(run)}
    return checked_export(run, out, data, discover=_splits, kind="images", limit=CHECKED_IMAGES,
                          write=write_graph, metadata=metadata, compare=compare,
                          summary=summary)  # fmt: skip
