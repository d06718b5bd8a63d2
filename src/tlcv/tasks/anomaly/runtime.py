"""Anomaly detection under ONNX Runtime without torch (deploy/runtime.py): each image resized
to the model's square with Pillow (as loading.read_square does), its score and map from the
graph (tasks/anomaly/export.py: the memory bank or Gaussians inside), the verdict at the run's
threshold, and the heat map drawn as the torch engine draws it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...evaluation.figures import data_url, png_bytes
from .pictures import heat_overlay, write_png


def graph_spec(run) -> tuple[dict, int]:
    return {"scores": None, "maps": None}, int(run.info["head"]["image_size"])


def square(image: Image.Image, size: int) -> np.ndarray:
    """uint8 (3, size, size): the whole image resized (antialiased bilinear)."""
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def score_image(run, engine, image: Image.Image) -> tuple[float, np.ndarray]:
    got = engine.run(square(image, int(run.info["head"]["image_size"]))[None])
    return float(got["scores"][0]), got["maps"][0]


def verdict_of(info: dict, score: float) -> tuple[str | None, float | None]:
    """("defective" | "good" | None without a threshold, the threshold)."""
    threshold = info.get("threshold")
    if threshold is None:
        return None, None
    return ("defective" if score > threshold else "good"), threshold


def predict(run, paths, *, out=None, strict: bool = False, **_ignored) -> list[dict]:
    """Per image: its score, the verdict and a heat-map PNG, as the torch engine writes."""
    from ...deploy.runtime import read_inputs
    from ...inference.inputs import unique_stem

    engine = run.engine()
    out_dir = Path(out) if out else run.path / "predictions"
    answers, used = [], set()
    for path, image, error in read_inputs(run, paths, strict, draft=False):
        if image is None:
            answers.append({"path": path, "error": error})
            continue
        score, heat = score_image(run, engine, image)
        picture = heat_overlay(np.asarray(image), heat, run.info.get("map_range"))
        heat_file = write_png(out_dir / f"{unique_stem(path, used)}_heatmap.png",
                              png_bytes(picture))  # fmt: skip
        verdict, threshold = verdict_of(run.info, score)
        answers.append({"path": path, "score": round(score, 6), "verdict": verdict,
                        "threshold": threshold, "heatmap": heat_file})  # fmt: skip
    return answers


def served(info: dict, image: Image.Image, score: float, heat: np.ndarray) -> dict:
    """POST /predict's answer (both engines): the verdict as a bar half full at the threshold,
    the score, and the map over the image."""
    verdict, threshold = verdict_of(info, score)
    if verdict is None:
        verdict, bar = "score (no threshold)", 1.0
    else:
        bar = min(1.0, score / (2 * threshold)) if threshold > 0 else 1.0
    picture = heat_overlay(np.asarray(image), heat, info.get("map_range"))
    return {"top": [{"label": verdict, "score": round(float(bar), 6)}], "score": round(score, 6),
            "threshold": threshold, "verdict": verdict,
            "overlay_png": data_url(png_bytes(picture, fast=True))}  # fmt: skip


def answer(server, image: Image.Image, top_k: int) -> dict:
    with server.slots:
        score, heat = score_image(server.run, server.onnx, image)
    return served(server.run.info, image, score, heat)


def picture(server, image: Image.Image, target: str | None) -> bytes:
    with server.slots:
        _, heat = score_image(server.run, server.onnx, image)
    overlay = heat_overlay(np.asarray(image), heat, server.run.info.get("map_range"))
    return png_bytes(overlay, fast=True)
