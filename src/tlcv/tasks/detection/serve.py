"""The served page of a detection run: the objects found (class, score, box) and the image
with the boxes drawn."""

from __future__ import annotations

import numpy as np
import torch

from .evaluate import detect, draw

THRESHOLD = 0.5  # the score above which the page reports an object (predict's default)


def answer(server, image, top_k: int) -> dict:
    return objects(server, image)[0]


def picture(server, image, target: str | None) -> bytes:
    return objects(server, image)[1]


def objects(server, image, threshold: float = THRESHOLD) -> tuple[dict, bytes]:
    """Objects above ``threshold`` (as bars: one per object) and the drawn image."""
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
    with server.lock:
        found = detect(server.model, pixels, torch.device("cpu"))
    keep = found["scores"] >= threshold
    classes = server.run.classes
    answer = [
        {
            "label": classes[int(c) - 1],
            "score": round(float(s), 6),
            "box": [round(float(v), 1) for v in box],
        }
        for box, c, s in zip(
            found["boxes"][keep], found["labels"][keep], found["scores"][keep], strict=True
        )
    ]
    return {"top": answer}, draw(pixels, found, classes, threshold=threshold)
