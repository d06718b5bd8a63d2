"""Classify images with a model exported by `tlcv export`, without tlcv or torch.

Needs only numpy, onnxruntime and Pillow:

    pip install numpy onnxruntime pillow
    python onnx_predict.py model.onnx photo.jpg [more.jpg ...] [--top-k 3]

The preprocessing (resize rule, sizes, interpolation) and the class names are read from the
file's metadata; the normalisation is inside the graph, which takes uint8 RGB images.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

INTERPOLATION = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def load_metadata(session: ort.InferenceSession) -> dict:
    props = session.get_modelmeta().custom_metadata_map
    return {k[len("tlcv.") :]: json.loads(v) for k, v in props.items() if k.startswith("tlcv.")}


def preprocess(path: str, prep: dict) -> np.ndarray:
    """Resize the short side to resize_size, centre-crop input_size: uint8 (3, S, S).

    As tlcv does: JPEGs decode at a reduced scale that stays >= resize_size (PIL's draft).
    """
    image = Image.open(path)
    if image.format == "JPEG":
        image.draft("RGB", (prep["resize_size"], prep["resize_size"]))
    image = ImageOps.exif_transpose(image).convert("RGB")
    width, height = image.size
    short, resize = min(width, height), prep["resize_size"]
    size = (
        (resize, round(height * resize / width))
        if width == short
        else (round(width * resize / height), resize)
    )
    image = image.resize(size, INTERPOLATION.get(prep["interpolation"], Image.BILINEAR))
    crop = prep["input_size"]
    left = int(round((image.width - crop) / 2.0))
    top = int(round((image.height - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop))
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = load_metadata(session)
    classes, prep = meta["classes"], meta["preprocessing"]
    batch = np.stack([preprocess(p, prep) for p in args.images])
    logits = session.run(["logits"], {"images": batch})[0]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    results = []
    for path, row in zip(args.images, probs, strict=True):
        top = np.argsort(-row)[: args.top_k]
        results.append(
            {
                "path": path,
                "top": [{"label": classes[i], "score": round(float(row[i]), 6)} for i in top],
            }
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
