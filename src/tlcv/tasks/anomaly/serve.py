"""The served page of an anomaly run: the verdict with the score (the bar is half full at the
threshold) and the anomaly map over the uploaded image."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ...serving.classes import data_url, png_bytes
from .pictures import heat_overlay


def session(run, engine: str):
    from .export import onnx_forward

    return onnx_forward(run, engine)


def _score(server, image: Image.Image) -> tuple[float, np.ndarray]:
    size = int(server.run.info["head"]["image_size"])
    square = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
    pixels = torch.from_numpy(square.copy()).permute(2, 0, 1)[None]
    with server.lock:
        if server.engine == "torch":
            from .loading import torch_forward

            forward = torch_forward(server.model, torch.device("cpu"))
        else:
            forward = server.onnx
        scores, maps = forward(pixels)
    return float(scores[0]), np.asarray(maps[0])


def answer(server, image: Image.Image, top_k: int) -> dict:
    score, heat = _score(server, image)
    threshold = server.run.info.get("threshold")
    if threshold is None:
        verdict, bar = "score (no threshold)", 1.0
    else:
        verdict = "defective" if score > threshold else "good"
        bar = min(1.0, score / (2 * threshold)) if threshold > 0 else 1.0
    picture = heat_overlay(np.asarray(image.convert("RGB")), heat, server.run.info.get("map_range"))
    return {
        "top": [{"label": verdict, "score": round(float(bar), 6)}],
        "score": round(score, 6),
        "threshold": threshold,
        "verdict": verdict,
        "overlay_png": data_url(png_bytes(picture)),
    }


def picture(server, image: Image.Image, target: str | None) -> bytes:
    score, heat = _score(server, image)
    return png_bytes(
        heat_overlay(np.asarray(image.convert("RGB")), heat, server.run.info.get("map_range"))
    )
