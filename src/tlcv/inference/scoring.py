"""Class probabilities of inputs under a saved run, through the feature extractor + head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import ImageItem
from ..runs import Run


@dataclass
class Scored:
    """Class probabilities of the readable inputs, plus what was skipped and, for clips, the
    sampled frame indices and per-step probabilities."""

    probs: np.ndarray
    items: list[ImageItem]
    skipped: list[tuple[str, str]]
    steps: list[tuple[np.ndarray, np.ndarray]] | None = None


def _encoder(run: Run, engine: str, frames: bool = False):
    """The run's backbone as eager torch, or its exported ONNX graph; ``frames``: a clip run,
    whose own graph is the whole clip model, so its frame CNN is exported on its own (into the
    feature cache's folder)."""
    from ..deploy.engine import check_engine

    check_engine(engine)
    if engine.startswith("onnxruntime") and frames:
        from ..deploy.export import backbone_encoder
        from ..errors import TlcvError

        if engine.endswith("int8"):
            raise TlcvError("clip runs have no int8 graph", hint="use --engine onnxruntime")
        return backbone_encoder(run.model().backbone, None)
    if engine.startswith("onnxruntime"):
        from ..deploy import run_encoder

        return run_encoder(run, int8=engine.endswith("int8"))
    return run.model().backbone


def score_images(run: Run, items: list[ImageItem], *, engine: str = "torch", **extract) -> Scored:
    """``extract``: extract_features' options (cache_dir, batch_size, device, ...)."""
    from ..features import extract_features

    fs = extract_features(items, _encoder(run, engine), **extract)
    with torch.no_grad():
        logits = run.model().head(torch.from_numpy(fs.features))
    return Scored(torch.softmax(logits, dim=1).numpy(), fs.items, fs.skipped)


def score_clips(
    run: Run,
    items: list[ImageItem],
    *,
    engine: str = "torch",
    prefix: int | None = None,
    **extract,
) -> Scored:
    """Clips: per-frame features, the temporal head over ``frames`` uniformly sampled ones
    (from the first ``prefix`` only, when given), and the head's output after each step."""
    from ..engine.sequences import clip_logits, pad_batch
    from ..features.clips import extract_clip_features
    from ..video import sample_indices

    head = run.model().head
    cf = extract_clip_features(items, _encoder(run, engine, frames=True), **extract)
    frames = int(run.info["frames"])
    logits = clip_logits(head, cf.sequences, frames=frames, prefix=prefix)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy() if len(logits) else logits
    steps = []
    with torch.no_grad():
        for seq in cf.sequences:
            idx = sample_indices(len(seq), frames, "uniform", prefix=prefix)
            feats, lengths, _ = pad_batch([(torch.from_numpy(seq[idx]), 0)])
            step = torch.softmax(head.step_logits(feats, lengths)[0], dim=1).numpy()
            steps.append((idx, step))
    return Scored(probs, cf.items, cf.skipped, steps)
