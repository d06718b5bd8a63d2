"""Segmentation under ONNX Runtime without torch (deploy/runtime.py): each image resized to
the model's scale with Pillow, padded, run through the graph (tasks/segmentation/export.py),
its class scores resized back to the image's own size, the mask and overlay written as the
torch path writes them. Also the colours and overlays both paths draw with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import TlcvError
from ...evaluation.figures import png_bytes
from ...io import write_bytes

MULTIPLE = 32  # the graph's height and width are multiples of it (loading.MULTIPLE)
# test-time views per --tta: the image axes each view is flipped along (H = -2, W = -1)
VIEWS: dict[str, tuple[tuple[int, ...], ...]] = {
    "none": ((),),
    "flip": ((), (-1,)),
    "hv": ((), (-1,), (-2,), (-2, -1)),
}


def palette(num_classes: int, fmt: dict | None = None) -> np.ndarray:
    """(K, 3) uint8 colours: the colour table of RGB-coded data, else a fixed distinct set."""
    if fmt and fmt.get("kind") == "rgb":
        colours = {v: int(k) for k, v in fmt["lut"].items() if v < num_classes}
        return np.array(
            [[(colours[i] >> s) & 255 for s in (16, 8, 0)] for i in range(num_classes)],
            dtype=np.uint8,
        )
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return (np.array([cmap(i % 20)[:3] for i in range(num_classes)]) * 255).astype(np.uint8)


def overlay(image: np.ndarray, mask: np.ndarray, colours: np.ndarray, alpha: float = 0.5):
    """The image with each pixel tinted by its class colour (void pixels left as they are)."""
    valid = mask < len(colours)
    tinted = image.astype(np.float32)
    tinted[valid] = (1 - alpha) * tinted[valid] + alpha * colours[mask[valid]]
    return tinted.round().astype(np.uint8)


def mask_answer(run, out_dir: Path, path: str, image: np.ndarray, mask: np.ndarray,
                used: set[str]) -> dict:  # fmt: skip
    """predict's answer for one image: its mask and overlay PNGs, and each class's share."""
    from ...inference.inputs import unique_stem

    colours = palette(run.info["num_classes"], run.info.get("mask_format"))
    stem = unique_stem(path, used)
    mask_file = write_bytes(out_dir / f"{stem}_mask.png", png_bytes(mask))
    overlay_file = write_bytes(out_dir / f"{stem}_overlay.png",
                               png_bytes(overlay(image, mask, colours)))  # fmt: skip
    counts = np.bincount(mask.ravel(), minlength=len(run.classes))
    fractions = {c: round(float(n) / mask.size, 4)
                 for c, n in zip(run.classes, counts, strict=True) if n}  # fmt: skip
    return {"path": path, "mask": str(mask_file), "overlay": str(overlay_file),
            "fractions": dict(sorted(fractions.items(), key=lambda kv: -kv[1]))}  # fmt: skip


def graph_spec(run) -> tuple[dict, None]:
    return {"logits": None}, None  # height and width follow the image


def scaled(image: Image.Image, size: int) -> np.ndarray:
    """uint8 (h, w, 3): the short side to ``size`` (antialiased bilinear), the long side
    rounded: the scale the model was trained to see images at."""
    width, height = image.size
    factor = size / min(width, height)
    target = (max(1, round(width * factor)), max(1, round(height * factor)))
    if target != (width, height):
        image = image.resize(target, Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8)  # a writable copy (torch wraps it)


def class_mask(run, engine, image: Image.Image, tta: str = "none") -> np.ndarray:
    """uint8 (H, W) classes at the image's own size: short side to the model's scale, zero
    padding to MULTIPLE, scores resized back bilinearly (as the torch engine does); ``tta``
    "flip" / "hv" average the class probabilities of the flipped views (VIEWS)."""
    from ...deploy.runtime import resize_bilinear, softmax

    width, height = image.size
    pixels = scaled(image, int(run.info["head"]["image_size"]))
    h, w = pixels.shape[:2]
    total = None
    for dims in VIEWS[tta]:  # (h, w, 3) pixels: image axis -2 is array axis 0, -1 is 1
        view = np.flip(pixels, [d + 2 for d in dims]) if dims else pixels
        padded = np.zeros((1, 3, -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE),
                          np.uint8)  # fmt: skip
        padded[0, :, :h, :w] = view.transpose(2, 0, 1)
        logits = engine.run(padded, ["logits"])["logits"][0, :, :h, :w]
        full = resize_bilinear(logits, height, width)
        if len(VIEWS[tta]) == 1:
            return full.argmax(0).astype(np.uint8)
        probs = softmax(np.flip(full, [d + 3 for d in dims]) if dims else full, axis=0)
        total = probs if total is None else total + probs
    return total.argmax(0).astype(np.uint8)


def predict(run, paths, *, out=None, window=None, tta: str = "none", strict: bool = False,
            **_ignored) -> list[dict]:  # fmt: skip
    """Masks and overlays in ``out`` (default RUN/predictions), as the torch engine writes."""
    from ...deploy.runtime import read_inputs

    if window:
        raise TlcvError("--window runs on the torch engine only", hint="drop --engine or --window")
    engine = run.engine()
    out_dir = Path(out) if out else run.path / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    answers, used = [], set()
    for path, image, error in read_inputs(run, paths, strict, draft=False):
        if image is None:
            answers.append({"path": path, "error": error})
            continue
        mask = class_mask(run, engine, image, tta)
        answers.append(mask_answer(run, out_dir, path, np.asarray(image), mask, used))
    return answers


def segment(server, image: Image.Image) -> tuple[list[dict], bytes]:
    with server.slots:
        mask = class_mask(server.run, server.onnx, image)
    classes = server.run.classes
    counts = np.bincount(mask.ravel(), minlength=len(classes))
    colours = palette(len(classes), server.run.info.get("mask_format"))
    shares = [{"label": classes[int(i)], "score": round(float(counts[i]) / mask.size, 6)}
              for i in np.argsort(-counts) if counts[i]]  # fmt: skip
    return shares, png_bytes(overlay(np.asarray(image), mask, colours), fast=True)


def answer(server, image: Image.Image, top_k: int) -> dict:
    from ...evaluation.figures import data_url

    shares, png = segment(server, image)
    return {"top": shares, "overlay_png": data_url(png)}


def picture(server, image: Image.Image, target: str | None) -> bytes:
    return segment(server, image)[1]
