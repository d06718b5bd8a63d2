"""`tlcv predict`: top-k classes per input; unreadable inputs get an ``error`` instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.decode import IMAGE_SUFFIXES
from ..errors import TlcvError
from ..runs import Run


def predict(
    run: Run,
    paths: list[str | Path],
    *,
    top_k: int = 5,
    prefix: int | None = None,
    engine: str = "torch",
    task,  # the run's tasks.Task (Task.evaluate / Task.predict pass themselves)
    **extract,
) -> list[dict]:
    """Clip runs add ``steps``: the sampled frame indices with the head's top class after
    each (``prefix``: look only at the first K frames)."""
    # masks / boxes and how they are drawn: not a classifier's options
    for dense_only in ("out", "window", "tta", "score_threshold"):
        extract.pop(dense_only, None)
    items = task.collect(paths)
    if not items:
        raise TlcvError(
            "no images or clips found in the given paths",
            hint=f"image types: {', '.join(sorted(IMAGE_SUFFIXES))}; or video files",
        )
    from ..evaluation.binary import calibrated, decision

    result = task.score(run, items, engine=engine, prefix=prefix, progress=False, **extract)
    rule = run.info.get("binary")  # a two-class run: calibrated, decided at its threshold
    probs = calibrated(result.probs, rule["temperature"]) if rule else result.probs
    k = max(1, min(top_k, len(run.classes)))
    by_path = {it.path: i for i, it in enumerate(result.items)}
    errors = dict(result.skipped)
    answers = []
    for it in items:
        if it.path not in by_path:
            answers.append({"path": it.path, "error": errors.get(it.path, "unreadable")})
            continue
        row = probs[by_path[it.path]]
        top = np.argsort(-row)[:k]
        answer = {
            "path": it.path,
            "top": [{"label": run.classes[int(c)], "score": round(float(row[c]), 6)} for c in top],
            **decision(row, run.classes, rule),
        }
        if result.steps is not None:
            idx, step = result.steps[by_path[it.path]]
            answer["steps"] = [
                {
                    "frame": int(f),
                    "label": run.classes[int(p.argmax())],
                    "score": round(float(p.max()), 6),
                }
                for f, p in zip(idx, step, strict=True)
            ]
        answers.append(answer)
    return answers
