"""The served page of an anomaly run on the torch engine: the verdict with the score (the bar
is half full at the threshold) and the anomaly map over the uploaded image (runtime.py
answers for ONNX Runtime, without torch, in the same words)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ...serving.classes import png_bytes
from .pictures import heat_overlay
from .runtime import served, square


def _score(server, image: Image.Image) -> tuple[float, np.ndarray]:
    from .loading import torch_forward

    pixels = torch.from_numpy(square(image, int(server.run.info["head"]["image_size"])).copy())
    with server.lock:
        scores, maps = torch_forward(server.model, torch.device("cpu"))(pixels[None])
    return float(scores[0]), np.asarray(maps[0])


def answer(server, image: Image.Image, top_k: int) -> dict:
    score, heat = _score(server, image)
    return served(server.run.info, image, score, heat)


def picture(server, image: Image.Image, target: str | None) -> bytes:
    _, heat = _score(server, image)
    overlay = heat_overlay(np.asarray(image), heat, server.run.info.get("map_range"))
    return png_bytes(overlay, fast=True)
