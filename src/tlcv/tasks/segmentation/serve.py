"""The served page of a segmentation run: each class's share of the uploaded image, and the
mask drawn over it (at the scale the model was trained at, which the model carries)."""

from __future__ import annotations

import numpy as np
import torch

from ...serving.classes import data_url, png_bytes
from .inference import class_scores, overlay, palette


def answer(server, image, top_k: int) -> dict:
    """Each class's share of the image (all classes present), and the overlay."""
    shares, png = segment(server, image)
    return {"top": shares, "overlay_png": data_url(png)}


def picture(server, image, target: str | None) -> bytes:
    return segment(server, image)[1]


def segment(server, image) -> tuple[list[dict], bytes]:
    """Each class present, with its share of the pixels, and the mask overlay as PNG bytes."""
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
    with server.lock:
        scores = class_scores(server.model, pixels, None, torch.device("cpu"))
    mask = scores.argmax(0).numpy()
    classes = server.run.classes
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    colours = palette(len(classes), server.run.info.get("mask_format"))
    shares = [
        {"label": classes[int(i)], "score": round(float(counts[i]) / mask.size, 6)}
        for i in np.argsort(-counts)
        if counts[i]
    ]
    return shares, png_bytes(overlay(np.array(image), mask.astype(np.uint8), colours), fast=True)
