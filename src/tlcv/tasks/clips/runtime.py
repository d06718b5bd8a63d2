"""Clip classification under ONNX Runtime without torch (deploy/runtime.py): frames decoded by
PyAV or Pillow, T of them spread uniformly (from the first ``prefix`` only, when given), each
resized and centre-cropped with Pillow, and the whole clip through the graph
(tasks/clips/export.py): the clip's top classes and the head's top class after each frame."""

from __future__ import annotations

import numpy as np

from ...errors import BadImageError, TlcvError


def graph_spec(run) -> tuple[dict, int]:
    width = len(run.classes)
    return {"logits": width, "step_logits": width}, int(run.preprocessing["input_size"])


def clip_scores(info: dict, prep: dict, engine, path: str, prefix: int | None = None):
    """(clip probabilities (C,), step probabilities (T, C), the sampled frame indices)."""
    from ...deploy.runtime import classifier_pixels, softmax
    from ...video import read_frames, sample_indices

    frames = read_frames(path, int(prep["resize_size"]))
    picked = sample_indices(len(frames), int(info["frames"]), "uniform", prefix=prefix)
    clip = np.stack([classifier_pixels(frames[i], prep) for i in picked])[None]
    got = engine.run(clip)
    return softmax(got["logits"][0]), softmax(got["step_logits"][0]), picked


def predict(run, paths, *, top_k: int = 5, prefix: int | None = None, strict: bool = False,
            **_ignored) -> list[dict]:  # fmt: skip
    """Top-k classes per clip, and the top class after each sampled frame (``steps``)."""
    from ...deploy.runtime import top_classes

    items = run.task.collect(paths)
    if not items:
        raise TlcvError("no clips found in the given paths", hint="give video files or folders")
    engine = run.engine()
    answers = []
    for item in items:
        try:
            probs, steps, picked = clip_scores(run.info, run.preprocessing, engine, item.path,
                                               prefix)  # fmt: skip
        except BadImageError as exc:
            if strict:
                raise TlcvError(f"{item.path}: {exc.message}", path=item.path) from exc
            answers.append({"path": item.path, "error": exc.message})
            continue
        answers.append({
            "path": item.path,
            "top": top_classes(run, probs, top_k),
            "steps": [{"frame": int(f), "label": run.classes[int(p.argmax())],
                       "score": round(float(p.max()), 6)}
                      for f, p in zip(picked, steps, strict=True)],
        })  # fmt: skip
    return answers
