"""What `tlcv train / evaluate / predict` print for segmentation runs (mIoU, not accuracy)."""

from __future__ import annotations

from rich.table import Table

from .cli_common import console, esc


def print_trained(run) -> None:
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
