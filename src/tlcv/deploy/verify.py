"""Checking an exported graph: against eager PyTorch on the run's own images, and the int8
copy's accuracy cost (static QDQ quantization calibrated on training images)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..data import ImageItem, discover, image_loader, make_splits
from ..errors import TlcvError
from ..runs import Run
from .engine import OnnxEngine, quiet


def verification_items(run: Run, data: str | Path | None) -> tuple[list, list, str]:
    """(check items, calibration items, description): the run's validation and training
    images, rebuilt from its saved configuration; ``data`` replaces both when given."""
    if data is not None:
        items = discover(data).all_items()
        return items, items, f"all images under {data}"
    cfg = run.config
    root = cfg.get("data") or cfg.get("source")
    if not root or not Path(str(root)).exists():
        raise TlcvError(
            f"the run's data ({root}) is not on this machine, so the export cannot be checked",
            hint="pass --data DIR with labelled images of the run's classes",
            path=str(run.path),
        )
    splits = make_splits(
        discover(root),
        val_fraction=float(cfg.get("val_fraction", 0.15)),
        test_fraction=float(cfg.get("test_fraction", 0.2)),
        per_class=cfg.get("per_class"),
        seed=int(cfg.get("seed", 0)),
        split_seed=cfg.get("split_seed"),
    )
    check, what = (splits.val, "validation") if splits.val else (splits.test, "test")
    return check or splits.train, splits.train, f"the run's {what} images ({root})"


def uint8_batches(items: list[ImageItem], prep, batch_size: int = 32):
    """(items, uint8 array) batches through tlcv's own decoding (unreadable files skipped)."""
    for batch in image_loader(items, prep, batch_size, num_workers=0):
        if batch.indices:
            yield [items[i] for i in batch.indices], batch.images.numpy()


def compare(graph, engines: dict[str, OnnxEngine], items, classes, prep):
    """Eager logits vs each engine's: max |diff|, top-1 agreement and accuracy per engine."""
    lookup = {c: i for i, c in enumerate(classes)}
    stats = {
        name: {"max_abs_logit_diff": 0.0, "agree": 0, "correct": 0} for name in ["torch", *engines]
    }
    n = labelled = 0
    for batch_items, images in uint8_batches(items, prep):
        with torch.inference_mode():
            eager = graph(torch.from_numpy(images))[0].numpy()
        labels = np.array([lookup.get(it.label, -1) for it in batch_items])
        mask = labels >= 0
        stats["torch"]["correct"] += int((eager.argmax(1) == labels)[mask].sum())
        for name, engine in engines.items():
            logits = engine.run(images, ["logits"])["logits"]
            s = stats[name]
            s["max_abs_logit_diff"] = max(
                s["max_abs_logit_diff"], float(np.abs(logits - eager).max())
            )
            s["agree"] += int((logits.argmax(1) == eager.argmax(1)).sum())
            s["correct"] += int((logits.argmax(1) == labels)[mask].sum())
        n += len(batch_items)
        labelled += int(mask.sum())
    out = {"images": n, "labelled": labelled}
    for name, s in stats.items():
        row = {"accuracy": s["correct"] / labelled if labelled else None}
        if name != "torch":
            row.update(max_abs_logit_diff=s["max_abs_logit_diff"], top1_agreement=s["agree"] / n)
        out[name] = row
    return out


def _calibration_reader(items, prep, limit: int, seed: int = 0):
    from onnxruntime.quantization import CalibrationDataReader

    picked = random.Random(seed).sample(items, min(limit, len(items)))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = (
                {"images": images} for _, images in uint8_batches(picked, prep, batch_size=16)
            )

        def get_next(self):
            return next(self.batches, None)

    return Reader()


def quantize_int8(src: Path, dst: Path, items, prep, calibration: int) -> None:
    """Static QDQ quantization (per-channel int8 weights, uint8 activations)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name(f".{dst.name}.pre.{os.getpid()}.onnx")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with quiet():
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
            quantize_static(
                str(pre),
                str(tmp),
                _calibration_reader(items, prep, calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
        os.replace(tmp, dst)
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def int8_verdict(verification: dict, int8_path: Path, max_drop: float) -> dict:
    fp32 = verification["onnxruntime_fp32"]["accuracy"]
    q = verification["onnxruntime_int8"]["accuracy"]
    if fp32 is None or q is None:
        int8_path.unlink(missing_ok=True)
        return {"int8_kept": False, "int8_reason": "no labelled images to measure the drop on"}
    drop = 100.0 * (fp32 - q)
    kept = drop <= max_drop
    if not kept:
        int8_path.unlink(missing_ok=True)
    reason = (
        f"accuracy {100 * q:.2f}% vs fp32 {100 * fp32:.2f}% ({drop:+.2f} points drop; "
        f"limit {max_drop:g})"
    )
    return {
        "int8_file": str(int8_path) if kept else None,
        "int8_kept": kept,
        "int8_drop_points": round(drop, 3),
        "int8_reason": reason,
    }
