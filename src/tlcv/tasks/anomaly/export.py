"""An anomaly run as one ONNX graph: uint8 images (B, 3, S, S) in, image ``scores`` (B,) and
anomaly ``maps`` (B, S, S) out, with the normalisation, the backbone, the memory bank (or
PaDiM's Gaussians) and the smoothing inside; checked against eager torch on the run's images.
`--engine onnxruntime` runs it (exported into RUN/export/ on first use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...deploy.engine import OnnxEngine, require_onnxruntime
from ...deploy.export import checked_export, export_graph, run_fingerprint, run_metadata
from ...deploy.graphs import record_graph, trusted_engine
from ...errors import TlcvError
from .data import discover

OUTPUTS = ["scores", "maps"]
CHECKED_IMAGES = 32


class AnomalyGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        model.early_exit = False  # a graph cannot raise: the unused tail is pruned instead
        self.model = model
        prep = model.backbone.preprocessing
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor):
        scores, maps = self.model((images.float() - self.mean) / self.std)
        return scores, maps[:, 0]


def _metadata(run) -> dict:
    meta = run_metadata(run)
    meta["preprocessing"]["resize_rule"] = "resize the whole image to input_size x input_size"
    meta["input_size"] = int(run.info["head"]["image_size"])
    meta["outputs"] = {"scores": "image anomaly score (> threshold: defective)",
                       "maps": "anomaly map (B, S, S) at the input's resolution"}  # fmt: skip
    meta["threshold"] = run.info.get("threshold")
    return meta


def write_graph(run, path: Path) -> str:
    graph = AnomalyGraph(run.load_model())
    return export_graph(graph, path, int(run.info["head"]["image_size"]), _metadata(run), OUTPUTS)


def _splits(root) -> dict:
    source = discover(root)
    return {"test": source.test, "val": source.val, "train": source.train}  # defects first


def export_run(run, *, out=None, int8: bool = False, data=None) -> dict:
    """Write the graph, then compare its scores and maps with eager torch."""
    if int8:
        raise TlcvError(
            "--int8 is not offered for anomaly runs: the scores are distances to stored "
            "features, which 8-bit activations would blur",
            hint="export without --int8",
        )

    def summary(check: dict) -> str:
        verdicts = check["verdict_agreement"]
        agree = "" if verdicts is None else f", verdicts agree on {100 * verdicts:.1f}%"
        return (f"max |score difference| {check['max_abs_score_diff']:.2e}, max |map "
                f"difference| {check['max_abs_map_diff']:.2e}{agree}")  # fmt: skip

    return checked_export(run, out, data, discover=_splits, kind="images", limit=CHECKED_IMAGES,
                          write=write_graph, metadata=_metadata(run), compare=compare,
                          summary=summary)  # fmt: skip


def compare(run, engine: OnnxEngine, items: list) -> dict:
    """Largest score and map differences, and whether both order the images alike."""
    from .loading import image_batches, torch_forward

    eager = torch_forward(run.model(), torch.device("cpu"))
    size = int(run.info["head"]["image_size"])
    eager_scores, onnx_scores, map_diff = [], [], 0.0
    for _, images, _, _ in image_batches([i.path for i in items], size, 8, 0):
        if images is None:
            continue
        s_t, m_t = eager(images)
        got = engine.run(images.numpy())
        eager_scores.append(s_t)
        onnx_scores.append(got["scores"])
        map_diff = max(map_diff, float(np.abs(got["maps"] - m_t).max()))
    a, b = np.concatenate(eager_scores), np.concatenate(onnx_scores)
    threshold = run.info.get("threshold")
    agree = None if threshold is None else float(((a > threshold) == (b > threshold)).mean())
    return {
        "images": len(a),
        "max_abs_score_diff": float(np.abs(a - b).max()),
        "max_rel_score_diff": float((np.abs(a - b) / np.maximum(np.abs(a), 1e-6)).max()),
        "max_abs_map_diff": map_diff,
        "same_order": bool((np.argsort(a) == np.argsort(b)).all()),
        "verdict_agreement": agree,
    }


def onnx_forward(run, engine: str):
    """uint8 images -> (scores, maps) through the run's graph under ONNX Runtime (exported on
    first use, again when the run's weights changed since)."""
    if engine != "onnxruntime":
        raise TlcvError(f"--engine {engine} does not run anomaly models",
                        hint="use --engine torch or onnxruntime")  # fmt: skip
    require_onnxruntime()
    if "anomaly-onnx" not in run.loaded:
        path = run.path / "export" / "model.onnx"
        size = int(run.info["head"]["image_size"])
        expected = (run_fingerprint(run), dict.fromkeys(OUTPUTS), size)
        session = trusted_engine(run, path, *expected)  # only a graph model.json recorded
        if session is None:
            write_graph(run, path)
            record_graph(run, path)
            session = trusted_engine(run, path, *expected)
        run.loaded["anomaly-onnx"] = session
    session = run.loaded["anomaly-onnx"]

    def forward(images: torch.Tensor):
        got = session.run(images.numpy())
        return got["scores"], got["maps"]

    return forward
