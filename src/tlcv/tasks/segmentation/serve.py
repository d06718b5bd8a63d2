"""The served page of a segmentation run: each class's share of the uploaded image, and the
mask drawn over it (at the scale the model was trained at, which the model carries)."""

from __future__ import annotations

import base64

import numpy as np
import torch

from ...serving.classes import png_data
from .inference import class_scores, overlay, palette


def answer(server, image, top_k: int) -> dict:
    """Each class's share of the image (all classes present), and the overlay."""
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
    with server.lock:
        scores = class_scores(server.model, pixels, None, torch.device("cpu"))
    mask = scores.argmax(0).numpy()
    classes = server.run.classes
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    colours = palette(len(classes), server.run.info.get("mask_format"))
    return {
        "top": [
            {"label": classes[int(i)], "score": round(float(counts[i]) / mask.size, 6)}
            for i in np.argsort(-counts)
            if counts[i]
        ],
        "overlay_png": png_data(overlay(np.array(image), mask.astype(np.uint8), colours)),
    }


def picture(server, image, target: str | None) -> bytes:
    return base64.b64decode(answer(server, image, 0)["overlay_png"].split(",", 1)[1])
