"""What `tlcv train / evaluate / predict` print for segmentation runs (mIoU) and detection runs
(mAP), where classification's accuracy table does not apply."""

from __future__ import annotations

from rich.table import Table

from .cli_common import console, esc


def print_trained(run) -> None:
    if run.info.get("task") == "detection":
        _print_trained_detector(run)
        return
    table = Table(
        title=esc(
            f"{run.info['backbone']} + {run.info['decoder']} ({run.info['strategy']}) -> {run.path}"
        )
    )
    for col in ("split", "images", "mIoU", "pixel acc.", "mean class acc."):
        table.add_column(col)
    for split in ("val", "test"):
        m = run.metrics.get(split)
        if m:
            table.add_row(
                split,
                str(m["n"]),
                f"{m['miou']:.3f}",
                f"{m['pixel_accuracy']:.3f}",
                f"{m['mean_class_accuracy']:.3f}",
            )
    console.print(table)


def print_evaluation(m: dict) -> None:
    console.print(
        f"mIoU {m['miou']:.4f}   pixel accuracy {m['pixel_accuracy']:.4f}   mean class "
        f"accuracy {m['mean_class_accuracy']:.4f}   images {m['n']}   skipped {m['skipped']}"
    )
    table = Table()
    for col in ("class", "pixels", "IoU", "accuracy"):
        table.add_column(col)
    for r in m["per_class"]:
        table.add_row(
            esc(r["class"]),
            str(r["pixels"]),
            "-" if r["iou"] is None else f"{r['iou']:.3f}",
            "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}",
        )
    console.print(table)
    console.print(
        f"overlays: {esc(m['output_dir'])}/overlays\nreport folder: {esc(m['output_dir'])}"
    )


def prediction_rows(results: list[dict]) -> list[list]:
    """CSV rows: path, class, fraction of the image (or the error), mask and overlay files."""
    rows = [["path", "class", "fraction", "mask", "overlay", "error"]]
    for r in results:
        if "error" in r:
            rows.append([r["path"], "", "", "", "", r["error"]])
        for name, share in r.get("fractions", {}).items():
            rows.append([r["path"], name, share, r["mask"], r["overlay"], ""])
    return rows


def _print_trained_detector(run) -> None:
    table = Table(
        title=esc(
            f"{run.info['backbone']} + {run.info['detector']} "
            f"({run.info['strategy']}) -> {run.path}"
        )
    )
    for col in ("split", "images", "mAP@0.5", "mAP@[.5:.95]", "recall"):
        table.add_column(col)
    for split in ("val", "test"):
        m = run.metrics.get(split)
        if m:
            table.add_row(
                split, str(m["n"]), f"{m['map50']:.3f}", f"{m['map']:.3f}", f"{m['recall']:.3f}"
            )
    console.print(table)


def print_detection_evaluation(m: dict) -> None:
    console.print(
        f"mAP@0.5 {m['map50']:.4f}   mAP@[.5:.95] {m['map']:.4f}   recall "
        f"{m['recall']:.4f}   images {m['n']}   skipped {m['skipped']}"
    )
    table = Table()
    for col in ("class", "boxes", "AP@0.5", "AP@[.5:.95]"):
        table.add_column(col)
    for r in m["per_class"]:
        table.add_row(
            esc(r["class"]),
            str(r["boxes"]),
            "-" if r.get("ap50") is None else f"{r['ap50']:.3f}",
            "-" if r.get("ap") is None else f"{r['ap']:.3f}",
        )
    console.print(table)
    console.print(f"precision-recall: {esc(m['pr_png'])}\nreport folder: {esc(m['output_dir'])}")


def detection_rows(results: list[dict]) -> list[list]:
    """CSV rows: path, class, score, x1, y1, x2, y2 (or the error), drawn file."""
    rows = [["path", "label", "score", "x1", "y1", "x2", "y2", "drawn", "error"]]
    for r in results:
        if "error" in r:
            rows.append([r["path"], "", "", "", "", "", "", "", r["error"]])
        for o in r.get("objects", []):
            rows.append([r["path"], o["label"], o["score"], *o["box"], r["drawn"], ""])
    return rows
