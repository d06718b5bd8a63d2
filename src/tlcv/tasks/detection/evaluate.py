"""Scores of a detector on labelled images (torchmetrics' mAP), `tlcv evaluate`'s files
(metrics, per-class AP, precision-recall plot, drawn images) and `tlcv predict`'s answers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ...data import open_rgb
from ...errors import BadImageError, TlcvError
from ...io import write_bytes, write_json, write_text
from .data import DetItem
from .objective import as_float, box_metric


def _read(path: str) -> torch.Tensor:
    return torch.from_numpy(np.array(open_rgb(path))).permute(2, 0, 1).contiguous()


@torch.inference_mode()
def detect(model, image: torch.Tensor, device) -> dict:
    """Boxes (in the image's pixels), labels 1..K and scores of one uint8 image."""
    (out,) = model.to(device).eval()(as_float([image], device))
    return {k: v.cpu() for k, v in out.items()}


def score_items(
    model, items: list[DetItem], classes: list[str], device, *, keep: int = 0,
    bootstrap: int = 0,
) -> tuple[dict, list, list]:  # fmt: skip
    """mAP@0.5, mAP@[.5:.95], recall (each with its ``bootstrap`` interval over resampled
    images), per-class AP; the first ``keep`` (path, image, truth, prediction) for drawings;
    unreadable images as (path, reason)."""
    metric = box_metric(class_metrics=True, sync=False)
    lookup = {c: i + 1 for i, c in enumerate(classes)}
    kept, skipped, pairs = [], [], []
    for item in items:
        try:
            image = _read(item.path)
        except BadImageError as exc:
            skipped.append((item.path, exc.message))
            continue
        truth = {
            "boxes": torch.tensor(item.boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor([lookup[n] for n in item.labels], dtype=torch.int64),
        }
        predicted = detect(model, image, device)
        metric.update([predicted], [truth])
        pairs.append((predicted, truth, item.path))
        if len(kept) < keep:
            kept.append((item.path, image, truth, predicted))
    result = _summary(metric.compute(), classes, items, skipped)
    result["intervals"] = box_intervals(pairs, bootstrap)
    result["per_image"] = [
        {"path": path, "truth": {"boxes": t["boxes"].tolist(), "labels": t["labels"].tolist()},
         "predicted": {k: v.tolist() for k, v in p.items()}}
        for p, t, path in pairs
    ]  # fmt: skip
    return result, kept, skipped


def box_intervals(pairs: list[tuple[dict, dict, str]], resamples: int) -> dict:
    """Intervals of mAP@0.5, mAP and recall: images resampled, torchmetrics' COCO evaluation
    rerun on each resample (one evaluation gives the three; about 40 ms per 100 images)."""
    from ...evaluation.bootstrap import joint_intervals

    def scores(idx: np.ndarray) -> dict:
        metric = box_metric(sync=False)
        metric.update([pairs[i][0] for i in idx], [pairs[i][1] for i in idx])
        found = metric.compute()
        return {key: float(found[name]) for key, name in BOX_SCORES.items()}

    return joint_intervals(len(pairs), scores, tuple(BOX_SCORES), resamples)


BOX_SCORES = {"map50": "map_50", "map": "map", "recall": "mar_100"}  # ours: torchmetrics'


def _summary(result: dict, classes: list[str], items: list[DetItem], skipped: list) -> dict:
    precision = result["precision"]  # (IoU thresholds, recall points, classes, areas, max dets)
    ids = [int(i) for i in result["classes"].reshape(-1)]
    per_class, curves = [], {}
    for k, name in enumerate(classes, start=1):
        row = {"class": name, "boxes": sum(lab == name for it in items for lab in it.labels)}
        if k in ids:
            j = ids.index(k)
            pr = precision[0, :, j, 0, -1].numpy()  # IoU 0.5, all areas, 100 detections
            valid = pr > -1
            row["ap50"] = float(pr[valid].mean()) if valid.any() else None
            row["ap"] = float(result["map_per_class"].reshape(-1)[j])
            curves[name] = pr.tolist()
        per_class.append(row)
    return {
        "map50": float(result["map_50"]),
        "map": float(result["map"]),
        "map75": float(result["map_75"]),
        "recall": float(result["mar_100"]),
        "n": len(items) - len(skipped),
        "per_class": per_class,
        "pr_curves": curves,
    }


def draw(
    image: torch.Tensor,
    predicted: dict,
    classes: list[str],
    truth: dict | None = None,
    threshold: float = 0.5,
) -> bytes:
    """PNG: true boxes green, predicted ones (score >= threshold) red with class and score
    (drawn by runtime.draw_boxes, as the torch-free engine draws them)."""
    from .runtime import draw_boxes

    found = {k: np.asarray(v) for k, v in predicted.items()}
    return draw_boxes(image.permute(1, 2, 0).numpy(), found, classes, truth, threshold)


def pr_plot(curves: dict[str, list[float]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.linspace(0, 1, 101)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for name, pr in curves.items():
        pr = np.asarray(pr)
        ax.plot(recall[pr > -1], pr[pr > -1], label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def evaluate(run, data, *, out=None, strict: bool = False, device: str = "auto",
             drawings: int = 4, bootstrap: int = 1000, **_ignored) -> dict:  # fmt: skip
    """mAP@0.5 / @[.5:.95], recall, per-class AP over every labelled image under ``data``;
    writes metrics.json, per_class.csv, pr_curve.png and drawn/ to ``out``."""
    from ...features.extract import resolve_device
    from ...runs import rows_to_csv
    from .data import discover_detection

    source = discover_detection(
        data,
        strict=strict,
        class_map=run.config.get("class_map"),
        allow_outside=bool(run.config.get("allow_outside_data", False)),
    )
    unknown = sorted(set(source.classes) - set(run.classes))
    if unknown:
        raise TlcvError(
            f"classes the model never saw: {', '.join(unknown)}",
            hint="the run knows: " + ", ".join(run.classes),
        )
    items = source.all_items()
    result, kept, skipped = score_items(
        run.model(), items, run.classes, resolve_device(device), keep=drawings,
        bootstrap=bootstrap,
    )  # fmt: skip
    out_dir = Path(out) if out else run.path / "eval" / Path(str(data)).resolve().name
    drawn = [
        str(
            write_bytes(
                out_dir / "drawn" / f"{i:02d}_{Path(p).stem}.png",
                draw(image, pred, run.classes, truth),
            )
        )
        for i, (p, image, truth, pred) in enumerate(kept)
    ]
    skipped = source.missing + skipped
    result.update(
        task="detection",
        data=str(data),
        run=str(run.path),
        notes=source.notes,
        drawn=drawn,
        skipped=len(skipped),
        skipped_files=[{"path": p, "reason": r} for p, r in skipped],
        pr_png=str(
            pr_plot(
                result["pr_curves"],
                out_dir / "pr_curve.png",
                f"{Path(str(data)).name}: mAP@0.5 {result['map50']:.3f}",
            )
        ),
    )
    if bootstrap > 0:
        from ...evaluation.bootstrap import describe

        result["bootstrap"] = {
            **describe(bootstrap),
            "method": "percentile bootstrap, images "
            "resampled with replacement, COCO evaluation per resample",
        }
    # every image's boxes, true and found: the intervals can be recomputed from them
    write_json(out_dir / "detections.json", result.pop("per_image"))
    result["detections_json"] = str(out_dir / "detections.json")
    write_json(out_dir / "metrics.json", result)
    rows = [
        {k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()}
        for r in result["per_class"]
    ]
    write_text(out_dir / "per_class.csv", rows_to_csv(rows))
    result["output_dir"] = str(out_dir)
    return result


def predict(
    run,
    paths,
    *,
    out=None,
    device: str = "auto",
    strict: bool = False,
    score_threshold: float = 0.5,
    **_ignored,
) -> list[dict]:
    """Boxes (x1, y1, x2, y2 in the image's pixels), class and score of each object found
    above ``score_threshold``, and a drawn PNG per image in ``out`` (default RUN/predictions)."""
    from ...features.extract import resolve_device
    from ...inference import collect_images, unique_stem

    items = collect_images(paths)
    if not items:
        raise TlcvError("no images found in the given paths")
    out_dir = Path(out) if out else run.path / "predictions"
    model, dev = run.model(), resolve_device(device)
    answers, used = [], set()
    for item in items:
        try:
            image = _read(item.path)
        except BadImageError as exc:
            if strict:
                raise
            answers.append({"path": item.path, "error": exc.message})
            continue
        predicted = detect(model, image, dev)
        stem = unique_stem(item.path, used)
        drawn = write_bytes(
            out_dir / f"{stem}_boxes.png",
            draw(image, predicted, run.classes, threshold=score_threshold),
        )
        keep = predicted["scores"] >= score_threshold
        answers.append(
            {
                "path": item.path,
                "drawn": str(drawn),
                "objects": [
                    {
                        "box": [round(float(v), 1) for v in box],
                        "label": run.classes[int(c) - 1],
                        "score": round(float(s), 4),
                    }
                    for box, c, s in zip(
                        predicted["boxes"][keep],
                        predicted["labels"][keep],
                        predicted["scores"][keep],
                        strict=True,
                    )
                ],
            }
        )
    return answers
