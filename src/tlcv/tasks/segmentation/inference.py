"""Masks for whole images at their own size: resize to the trained scale, predict (optionally in
overlapping windows), resize the class scores back, then score or draw them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...data import normalize, open_rgb
from ...errors import BadImageError
from ...io import write_bytes
from .loading import MULTIPLE, pad_batch
from .runtime import VIEWS, overlay, palette, scaled  # noqa: F401 - shared by both engines


def _resized(image: torch.Tensor, size: int) -> torch.Tensor:
    """The short side to ``size`` with Pillow's antialiased bilinear resize: the torch-free
    engine's step (runtime.scaled), so both engines see the same pixels."""
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    return torch.from_numpy(scaled(pil, size)).permute(2, 0, 1).contiguous()


@torch.inference_mode()
def class_scores(
    model,
    image: torch.Tensor,
    size: int | None,
    device: torch.device,
    window: int | None = None,
    tta: str = "none",
) -> torch.Tensor:
    """Softmax scores (K, H, W) at the image's own size for a uint8 (3, H, W) image, seen at
    ``size`` (None: the scale the model was trained at). ``tta``: "flip", the mean of the
    scores of the image and of its mirror image (mirrored back); "hv", also upside down and
    both (for models trained with ``--flips hv``)."""
    h, w = image.shape[-2:]
    scaled = _resized(image, size or model.image_size)
    total = None
    for dims in VIEWS[tta]:  # each view flipped along ``dims``, its scores flipped back
        view = scaled.flip(dims) if dims else scaled
        if window is None or max(view.shape[-2:]) <= window:
            x, _ = pad_batch([view], None)
            logits = model(normalize(x, model.backbone.preprocessing, device))[0]
            logits = logits[:, : view.shape[-2], : view.shape[-1]]
        else:
            logits = _windowed(model, view, window, device)
        logits = F.interpolate(logits[None].float(), size=(h, w), mode="bilinear",
                               align_corners=False)[0]  # fmt: skip
        probs = (logits.flip(dims) if dims else logits).softmax(0).cpu()
        total = probs if total is None else total + probs
    return total / len(VIEWS[tta])


def _windowed(model, image: torch.Tensor, window: int, device) -> torch.Tensor:
    """Average the logits of overlapping ``window`` squares (stride 2/3 of it) over the image."""
    window = max(MULTIPLE, window // MULTIPLE * MULTIPLE)
    h, w = image.shape[-2:]
    step = max(MULTIPLE, window * 2 // 3)
    tops = sorted({*range(0, max(1, h - window + 1), step), max(0, h - window)})
    lefts = sorted({*range(0, max(1, w - window + 1), step), max(0, w - window)})
    total, count = None, torch.zeros(1, h, w)
    for top in tops:
        for left in lefts:
            tile = image[:, top : top + window, left : left + window]
            x, _ = pad_batch([tile], None)
            out = model(normalize(x, model.backbone.preprocessing, device))[0].float().cpu()
            out = out[:, : tile.shape[-2], : tile.shape[-1]]
            if total is None:
                total = torch.zeros(out.shape[0], h, w)
            total[:, top : top + tile.shape[-2], left : left + tile.shape[-1]] += out
            count[:, top : top + tile.shape[-2], left : left + tile.shape[-1]] += 1
    return total / count


def read_image(path: str) -> torch.Tensor:
    return torch.from_numpy(np.array(open_rgb(path))).permute(2, 0, 1).contiguous()


def save_panel(
    path: Path,
    image: np.ndarray,
    truth: np.ndarray,
    predicted: np.ndarray,
    colours: np.ndarray,
    title: str,
) -> Path:
    """image | truth | prediction, side by side, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, picture, name in zip(
        axes,
        (image, overlay(image, truth, colours), overlay(image, predicted, colours)),
        ("image", "truth", "prediction"),
        strict=True,
    ):
        ax.imshow(picture)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())  # atomic, like every file tlcv writes


def safe_read(path: str) -> tuple[torch.Tensor | None, str | None]:
    try:
        return read_image(path), None
    except BadImageError as exc:
        return None, exc.message
