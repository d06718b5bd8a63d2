"""Scores of a segmentation model on labelled pairs (at full resolution), `tlcv evaluate`'s
files, and `tlcv predict`'s masks and overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import TlcvError
from ...io import write_bytes, write_json, write_text
from .data import MaskFormat, SegItem
from .inference import class_scores, palette, safe_read, save_panel
from .metrics import PixelMetrics
from .scores import BINARY_COLUMNS, ImageScores


def score_pairs(
    model,
    items: list[SegItem],
    fmt: MaskFormat,
    size: int,
    device,
    *,
    window: int | None = None,
    keep: int = 0,
    tta: str = "none",
    bootstrap: int = 0,
) -> tuple[dict, list, list]:
    """Metrics over ``items`` at each image's own size, with per-image scores (``per_image``)
    and ``bootstrap``-resample intervals; the first ``keep`` (image, truth, prediction) triples
    for panels; unreadable pairs as (path, reason)."""
    from .data import IGNORE

    metrics = PixelMetrics(fmt.classes)
    scores = ImageScores(fmt.classes, IGNORE)
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

        predicted = class_scores(model, image, size, device, window, tta).argmax(0)
        metrics.update(predicted, torch.from_numpy(truth))
        scores.update(item.path, predicted.numpy(), truth)
        if keep:  # the first ``keep``; of two-class data, the ``keep`` lowest Dice
            rank = scores.rows[-1]["dice"] if scores.binary else len(kept)
            kept.append((rank, (item.path, image.permute(1, 2, 0).numpy(), truth,
                                predicted.numpy())))  # fmt: skip
            kept = sorted(kept, key=lambda pair: pair[0])[:keep]
    result = metrics.result()
    result["n"] = len(items) - len(skipped)
    result.update(scores.result(bootstrap))
    if scores.binary:  # the scores a two-class (lesion / background) report leads with
        result["headline"] = [list(column) for column in BINARY_COLUMNS]
        result["foreground"] = fmt.classes[1]
    result["per_image"] = scores.csv_rows()
    return result, [triple for _, triple in kept], skipped


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
    """image | truth | prediction PNGs, titled with the image's Dice (two classes) or pixel
    accuracy."""
    from .scores import FOREGROUND, foreground

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (path, image, truth, predicted) in enumerate(kept):
        valid = truth < len(colours)
        if len(colours) == 2:
            both = (truth[valid] * 2 + (predicted[valid] == FOREGROUND)).astype(np.int64)
            score = f"Dice {foreground(np.bincount(both, minlength=4).reshape(2, 2))['dice']:.3f}"
        else:
            agree = float((predicted[valid] == truth[valid]).mean()) if valid.any() else 0.0
            score = f"pixel accuracy {agree:.3f}"
        file = folder / f"{i:02d}_{Path(path).stem}.png"
        out.append(str(save_panel(file, image, truth, predicted, colours,
                                  f"{Path(path).name}: {score}")))  # fmt: skip
    return out


def plot_dice(rows: list[dict], file: Path) -> Path:
    """The per-image Dice distribution: a mean hides the images a model misses outright."""
    from ...evaluation.figures import png_of, pyplot

    plt = pyplot()
    values = [float(r["dice"]) for r in rows if r.get("dice") not in ("", None)]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(values, bins=np.linspace(0, 1, 21), color="#4c72b0", edgecolor="white")
    if values:
        ax.axvline(float(np.mean(values)), color="#c44e52", linestyle="--",
                   label=f"mean {np.mean(values):.3f}")  # fmt: skip
        ax.legend(loc="upper left")
    ax.set_xlabel("Dice per image")
    ax.set_ylabel("images")
    ax.set_title(f"{len(values)} images")
    return write_bytes(file, png_of(fig))


def evaluate(
    run,
    data,
    *,
    out=None,
    strict: bool = False,
    device: str = "auto",
    window: int | None = None,
    tta: str = "none",
    panels: int = 4,
    bootstrap: int = 1000,
    **_ignored,
) -> dict:
    """mIoU, per-class IoU and accuracy, pixel accuracy over every labelled pair under
    ``data`` (two-class data: Dice, IoU, sensitivity, precision, HD95), each with its
    ``bootstrap`` interval; writes metrics.json, per_class.csv, per_image.csv, confusion.png,
    overlays/ (two-class data: the worst images, and dice.png) to ``out``."""
    from ...evaluation import plot_confusion
    from ...evaluation.bootstrap import describe
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
        tta=tta,
        bootstrap=bootstrap,
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
    if bootstrap > 0:
        result["bootstrap"] = describe(bootstrap)
    result["tta"] = tta
    if "dice" in result:
        result["dice_png"] = str(plot_dice(result["per_image"], out_dir / "dice.png"))
    from ...runs import rows_to_csv

    per_image = result.pop("per_image")
    write_text(out_dir / "per_image.csv", rows_to_csv(per_image))
    result["per_image_csv"] = str(out_dir / "per_image.csv")
    write_json(out_dir / "metrics.json", result)
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
    tta: str = "none",
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
        predicted = class_scores(model, image, None, dev, window, tta).argmax(0)
        mask = predicted.numpy().astype(np.uint8)
        pixels = image.permute(1, 2, 0).numpy()
        answers.append(mask_answer(run, out_dir, item.path, pixels, mask, used))
    return answers
