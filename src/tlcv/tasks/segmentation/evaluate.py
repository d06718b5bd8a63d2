"""Scores of a segmentation model on labelled pairs (at full resolution), `tlcv evaluate`'s
files, and `tlcv predict`'s masks and overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import TlcvError
from ...io import write_json, write_text
from .data import MaskFormat, SegItem
from .inference import class_scores, palette, safe_read, save_panel
from .metrics import PixelMetrics


def score_pairs(
    model,
    items: list[SegItem],
    fmt: MaskFormat,
    size: int,
    device,
    *,
    window: int | None = None,
    keep: int = 0,
) -> tuple[dict, list, list]:
    """Metrics over ``items`` at each image's own size; the first ``keep`` (image, truth,
    prediction) triples for panels; unreadable pairs as (path, reason)."""
    metrics = PixelMetrics(fmt.classes)
    kept, skipped = [], []
    model = model.to(device).eval()
    for item in items:
        image, error = safe_read(item.path)
        if image is None:
            skipped.append((item.path, error))
            continue
        try:
            truth = fmt.decode(item.mask)
        except (OSError, ValueError) as exc:
            skipped.append((item.path, str(exc).splitlines()[0][:200]))
            continue
        if truth.shape != tuple(image.shape[-2:]):
            skipped.append((item.path, "image and mask sizes differ"))
            continue
        import torch

        predicted = class_scores(model, image, size, device, window).argmax(0)
        metrics.update(predicted, torch.from_numpy(truth))
        if len(kept) < keep:
            kept.append((item.path, image.permute(1, 2, 0).numpy(), truth, predicted.numpy()))
    result = metrics.result()
    result["n"] = len(items) - len(skipped)
    return result, kept, skipped


def per_class_rows(result: dict) -> list[dict]:
    return [
        {
            "class": r["class"],
            "pixels": r["pixels"],
            "iou": "" if r["iou"] is None else f"{r['iou']:.4f}",
            "accuracy": "" if r["accuracy"] is None else f"{r['accuracy']:.4f}",
        }
        for r in result["per_class"]
    ]


def write_panels(kept: list, colours: np.ndarray, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (path, image, truth, predicted) in enumerate(kept):
        valid = truth < len(colours)
        agree = float((predicted[valid] == truth[valid]).mean()) if valid.any() else 0.0
        file = folder / f"{i:02d}_{Path(path).stem}.png"
        out.append(
            str(
                save_panel(
                    file,
                    image,
                    truth,
                    predicted,
                    colours,
                    f"{Path(path).name}: pixel accuracy {agree:.3f}",
                )
            )
        )
    return out


def evaluate(
    run,
    data,
    *,
    out=None,
    strict: bool = False,
    device: str = "auto",
    window: int | None = None,
    panels: int = 4,
    **_ignored,
) -> dict:
    """mIoU, per-class IoU and accuracy, pixel accuracy over every labelled pair under
    ``data``; writes metrics.json, per_class.csv, confusion.png and overlays/ to ``out``."""
    from ...evaluation import plot_confusion
    from ...features.extract import resolve_device
    from .data import discover_segmentation

    fmt = MaskFormat.from_dict(run.info["mask_format"])
    source = discover_segmentation(data, strict=strict, ignore_index=_ignore_of(run))
    if source.classes != fmt.classes:
        raise TlcvError(
            f"{data} has classes {', '.join(source.classes)}; the run was trained on "
            f"{', '.join(fmt.classes)}",
            hint="evaluate on data labelled with the run's class table",
        )
    items = source.all_items()
    result, kept, skipped = score_pairs(
        run.model(),
        items,
        fmt,
        None,  # the model's own scale
        resolve_device(device),
        window=window,
        keep=panels,
    )
    skipped = source.missing + skipped
    out_dir = Path(out) if out else run.path / "eval" / Path(str(data)).resolve().name
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = palette(len(fmt.classes), run.info["mask_format"])
    result.update(
        task="segmentation",
        data=str(data),
        run=str(run.path),
        notes=source.notes,
        skipped=len(skipped),
        skipped_files=[{"path": p, "reason": r} for p, r in skipped],
        overlays=write_panels(kept, colours, out_dir / "overlays"),
        overlays_dir=str(out_dir / "overlays"),
        confusion_png=str(
            plot_confusion(
                result["confusion"],
                fmt.classes,
                out_dir / "confusion.png",
                title=f"{Path(str(data)).name}: mIoU {result['miou']:.3f}",
            )
        ),
    )
    write_json(out_dir / "metrics.json", result)
    from ...runs import rows_to_csv

    write_text(out_dir / "per_class.csv", rows_to_csv(per_class_rows(result)))
    result["output_dir"] = str(out_dir)
    return result


def _ignore_of(run) -> int:
    return int(run.config.get("ignore_index", 255))


def predict(
    run,
    paths,
    *,
    out=None,
    device: str = "auto",
    window: int | None = None,
    strict: bool = False,
    **_ignored,
) -> list[dict]:
    """An index-mask PNG and a colour overlay per image in ``out`` (default RUN/predictions),
    and each image's class fractions; unreadable inputs get an ``error``."""
    from ...features.extract import resolve_device
    from ...inference import collect_images
    from .runtime import mask_answer

    items = collect_images(paths)
    if not items:
        raise TlcvError("no images found in the given paths")
    out_dir = Path(out) if out else run.path / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    model, dev = run.model(), resolve_device(device)
    answers, used = [], set()
    for item in items:
        image, error = safe_read(item.path)
        if image is None:
            if strict:
                raise TlcvError(f"{item.path}: {error}", path=item.path)
            answers.append({"path": item.path, "error": error})
            continue
        predicted = class_scores(model, image, None, dev, window).argmax(0)
        mask = predicted.numpy().astype(np.uint8)
        pixels = image.permute(1, 2, 0).numpy()
        answers.append(mask_answer(run, out_dir, item.path, pixels, mask, used))
    return answers
