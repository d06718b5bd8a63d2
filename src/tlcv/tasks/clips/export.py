"""A clip run as one ONNX graph: one clip's sampled frames, uint8 (1, T, 3, S, S) with T any
length (each frame resized and centre-cropped as the run's preprocessing says), in; the clip's
``logits`` (1, C) and the head's ``step_logits`` after each frame (1, T, C) out. The frame CNN,
its normalisation and the temporal head (LSTM, GRU, bidirectional, mean or one frame) are
inside; one clip at a time, so no packing of variable lengths is needed. Checked against the
eager torch path (features, then the head) on the run's clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...deploy.engine import OnnxEngine
from ...deploy.export import checked_export, run_metadata, write_onnx
from ...errors import TlcvError

OUTPUTS = ["logits", "step_logits"]
CHECKED_CLIPS = 12


class ClipGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.backbone, self.head = model.backbone, model.head
        prep = model.backbone.preprocessing
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor):
        frames = images[0]  # (T, 3, S, S): one clip
        feats = self.backbone((frames.float() - self.mean) / self.std)
        return self.head.whole_clips(feats[None])


def _metadata(run) -> dict:
    meta = run_metadata(run)
    meta["input"] = "uint8 RGB (1, frames, 3, input_size, input_size): one clip's frames"
    meta["outputs"] = {
        "logits": "clip class scores (1, classes)",
        "step_logits": "class scores after each frame (1, frames, classes)",
    }
    meta["frames"] = int(run.info["frames"])
    meta["sampling"] = "frames spread uniformly over the clip (all of a shorter clip)"
    return meta


def write_graph(run, path: Path) -> str:
    size = int(run.preprocessing.input_size)
    dims = {1: torch.export.Dim("frames", min=2, max=4096)}
    axes = {"images": {1: "frames"}, "logits": {}, "step_logits": {1: "frames"}}
    graph = ClipGraph(run.load_model())
    # TorchScript's exporter: it maps the RNN to ONNX's LSTM / GRU operators, which run any
    # number of frames; torch.export unrolls the recurrence over the example's length
    return write_onnx(graph, path, (1, 4, 3, size, size), _metadata(run), OUTPUTS, dims, axes,
                      dynamo=False)  # fmt: skip


def _splits(root) -> dict:
    """The clips of each split, spread over the classes (folders list them class by class)."""
    from ...video import discover_clips

    source = discover_clips(root)
    spread = {}
    for name in ("val", "test", "train", "all"):
        items = source.splits.get(name) or []
        spread[name] = items[:: max(1, len(items) // CHECKED_CLIPS)]
    return spread


def compare(run, engine: OnnxEngine, items: list) -> dict:
    """The eager path's clip and step probabilities vs the graph's, clip by clip."""
    from ...inference import score_clips
    from .runtime import clip_scores

    eager = score_clips(run, items, engine="torch", cache_dir=False)
    by_path = {it.path: i for i, it in enumerate(eager.items)}
    agree = n = 0
    prob_diff = step_diff = 0.0
    for item in items:
        if item.path not in by_path:
            continue
        i = by_path[item.path]
        probs, steps, _ = clip_scores(run.info, run.preprocessing.to_dict(), engine, item.path)
        n += 1
        agree += int(probs.argmax() == eager.probs[i].argmax())
        prob_diff = max(prob_diff, float(np.abs(probs - eager.probs[i]).max()))
        step_diff = max(step_diff, float(np.abs(steps - eager.steps[i][1]).max()))
    if not n:
        raise TlcvError("none of the check clips could be read", hint="pass --data DIR")
    return {"clips": n, "top1_agreement": agree / n, "max_abs_prob_diff": prob_diff,
            "max_abs_step_prob_diff": step_diff}  # fmt: skip


def export_run(run, *, out=None, int8: bool = False, data=None) -> dict:
    """Write the graph, then compare its clip and step scores with the eager path's."""
    if int8:
        raise TlcvError("--int8 is not offered for clip runs", hint="export without --int8")

    def summary(check: dict) -> str:
        return (f"top-1 agreement {100 * check['top1_agreement']:.2f}%, max |probability "
                f"difference| {check['max_abs_prob_diff']:.2e} (clip), "
                f"{check['max_abs_step_prob_diff']:.2e} (steps)")  # fmt: skip

    return checked_export(run, out, data, discover=_splits, kind="clips", limit=CHECKED_CLIPS,
                          write=write_graph, metadata=_metadata(run), compare=compare,
                          summary=summary)  # fmt: skip
