"""What the served page answers for a run that classifies whole images: the top classes
(torch or ONNX Runtime) and a Grad-CAM picture. The base task contract's serving parts
(tasks/__init__.py); tasks that answer otherwise bring their own."""

from __future__ import annotations

import numpy as np
import torch
from fastapi import HTTPException
from PIL import Image

from ..evaluation.figures import data_url, png_bytes  # noqa: F401 - what the task serve modules use


def _input(server, image: Image.Image) -> torch.Tensor:
    from ..data import eval_transform

    return eval_transform(server.run.preprocessing)(image)


def top_classes(server, image: Image.Image, top_k: int = 5) -> dict:
    x = _input(server, image)
    with server.lock:
        if server.engine == "torch":
            from ..data import normalize

            with torch.inference_mode():
                batch = normalize(x[None], server.model.backbone.preprocessing, torch.device("cpu"))
                probs = server.model(batch).softmax(1)[0].numpy()
        else:
            logits = server.onnx.run(x[None].numpy(), ["logits"])["logits"][0]
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
    from ..evaluation.binary import verdict

    return verdict(server.run, probs, top_k)  # a two-class run: calibrated, thresholded


def cam_picture(server, image: Image.Image, target: str | None) -> bytes:
    from ..errors import TlcvError
    from ..interpret.pictures import Explanation, explain_tensors, picture

    x = _input(server, image)
    with server.lock:
        try:
            ((heat, name, top),) = explain_tensors(server.run, [x], target=target)
        except TlcvError as exc:
            raise HTTPException(422, exc.message) from exc
    return picture(Explanation("upload", x.permute(1, 2, 0).numpy(), heat, name, top))
