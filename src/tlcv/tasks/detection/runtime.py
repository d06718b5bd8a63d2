"""Detection under ONNX Runtime without torch (deploy/runtime.py): the whole image into the
graph (tasks/detection/export.py), its boxes out; and the drawing both engines use (Pillow)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

THRESHOLD = 0.5  # the score above which the page reports an object (predict's default)


def draw_boxes(image: np.ndarray, found: dict, classes: list[str], truth: dict | None = None,
               threshold: float = THRESHOLD, fast: bool = False) -> bytes:  # fmt: skip
    """PNG: true boxes green, predicted ones (score >= threshold) red with class and score."""
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    if truth is not None:
        for box in np.asarray(truth["boxes"]).reshape(-1, 4):
            pen.rectangle([float(v) for v in box], outline=(0, 255, 0), width=3)
    for box, label, score in zip(*(np.asarray(found[k]) for k in ("boxes", "labels", "scores")),
                                 strict=True):  # fmt: skip
        if score >= threshold:
            x1, y1, x2, y2 = (float(v) for v in box)
            pen.rectangle([x1, y1, x2, y2], outline=(255, 0, 0), width=2)
            pen.text((x1, max(0.0, y1 - 11)), f"{classes[int(label) - 1]} {score:.2f}",
                     fill=(255, 0, 0))  # fmt: skip
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1 if fast else 6)  # fast: a served picture
    return buf.getvalue()


def objects(found: dict, classes: list[str], threshold: float) -> list[dict]:
    """Each object above ``threshold``: box in the image's pixels, class and score."""
    return [{"box": [round(float(v), 1) for v in box], "label": classes[int(c) - 1],
             "score": round(float(s), 4)}
            for box, c, s in zip(found["boxes"], found["labels"], found["scores"], strict=True)
            if s >= threshold]  # fmt: skip


def graph_spec(run) -> tuple[dict, None]:
    return {"boxes": 4, "labels": None, "scores": None}, None


def detect(engine, image: Image.Image) -> dict:
    pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)[None]
    return engine.run(np.ascontiguousarray(pixels))


def predict(run, paths, *, out=None, strict: bool = False, score_threshold: float = THRESHOLD,
            **_ignored) -> list[dict]:  # fmt: skip
    """Boxes above ``score_threshold`` and a drawn PNG per image, as the torch engine writes."""
    from ...deploy.runtime import read_inputs
    from ...inference.inputs import unique_stem
    from ...io import write_bytes

    engine = run.engine()
    out_dir = Path(out) if out else run.path / "predictions"
    answers, used = [], set()
    for path, image, error in read_inputs(run, paths, strict, draft=False):
        if image is None:
            answers.append({"path": path, "error": error})
            continue
        found = detect(engine, image)
        drawn = write_bytes(out_dir / f"{unique_stem(path, used)}_boxes.png",
                            draw_boxes(np.asarray(image), found, run.classes,
                                       threshold=score_threshold))  # fmt: skip
        answers.append({"path": path, "drawn": str(drawn),
                        "objects": objects(found, run.classes, score_threshold)})  # fmt: skip
    return answers


def answer(server, image: Image.Image, top_k: int) -> dict:
    with server.slots:
        found = detect(server.onnx, image)
    return {"top": objects(found, server.run.classes, THRESHOLD)}


def picture(server, image: Image.Image, target: str | None) -> bytes:
    with server.slots:
        found = detect(server.onnx, image)
    return draw_boxes(np.asarray(image), found, server.run.classes, fast=True)
