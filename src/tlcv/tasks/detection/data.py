"""Detection data on disk: images and their boxes in the formats users bring.

``--data`` may be (``read_boxes``):
  DIR with a box list (``gt.txt`` / ``*.csv`` / ``*.txt``: ``file;x1;y1;x2;y2;class``, ``;`` or
      ``,`` separated, header optional; GTSDB's own format) and images in DIR/images or DIR
  DIR with Pascal VOC XML (``Annotations/*.xml`` + ``JPEGImages/``, or XML beside the images)
  a COCO JSON file (or DIR holding one: ``annotations.json`` / ``instances*.json``)
  DIR with YOLO labels (``images/`` + ``labels/*.txt``: ``class cx cy w h`` in 0-1, class
  names from ``classes.txt`` / ``data.yaml``)
Images listed with no box are kept as negatives. The readers (readers.py) refuse what no
format allows (NaN, undeclared classes, paths leaving the data folder); every box is then
checked against its image (inside it, positive size, a known class); what fails is listed with
the file and line.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ...data.decode import file_identity
from ...errors import TlcvError
from .readers import read_boxes

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DetItem:
    """One image and its boxes (x1, y1, x2, y2 in pixels, exclusive right/bottom)."""

    path: str
    boxes: tuple[tuple[float, float, float, float], ...]
    labels: tuple[str, ...]
    identity: str
    label: None = None  # the classification field callers share


@dataclass
class DetSource:
    root: str
    splits: dict[str, list[DetItem]]
    classes: list[str]
    format: str
    notes: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (file[:line], reason)

    def all_items(self) -> list[DetItem]:
        return [item for items in self.splits.values() for item in items]


def read_class_map(file: str | Path) -> dict[str, str | None]:
    """``from,to`` rows (ids or names); an empty ``to`` drops the class."""
    path = Path(file).expanduser()
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise TlcvError(f"cannot read --class-map {path}: {exc}", path=str(path)) from exc
    out: dict[str, str | None] = {}
    for line_no, row in enumerate(rows, start=1):
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        if line_no == 1 and [c.strip().lower() for c in row[:2]] == ["from", "to"]:
            continue
        out[row[0].strip()] = (row[1].strip() or None) if len(row) > 1 else None
    return out


def discover_detection(
    data: str | Path,
    *,
    strict: bool = False,
    class_map: str | Path | None = None,
    allow_outside: bool = False,
) -> DetSource:
    """Checked images and boxes; problems listed (file and line) or fatal with ``strict``.
    Images outside the data folder are named and left out unless ``allow_outside``."""
    root = Path(data).expanduser()
    raw, fmt = read_boxes(root, allow_outside)
    mapping = read_class_map(class_map) if class_map else None
    problems = list(raw.problems)
    items: list[DetItem] = []
    dropped = 0
    for image, boxes in sorted(raw.boxes.items()):
        if not image.is_file():
            where = boxes[0][5] if boxes else str(image)
            problems.append((where, f"{image.name} is listed but not found"))
            continue
        try:
            with Image.open(image) as im:
                width, height = im.size
        except (OSError, Image.DecompressionBombError) as exc:
            problems.append((str(image), f"cannot read: {str(exc).splitlines()[0][:100]}"))
            continue
        kept_boxes, kept_labels = [], []
        for x1, y1, x2, y2, name, where in boxes:
            if mapping is not None:
                if name not in mapping:
                    problems.append((where, f"class {name!r} is not in --class-map"))
                    continue
                if mapping[name] is None:
                    dropped += 1
                    continue
                name = mapping[name]
            if not name:
                problems.append((where, "empty class"))
            elif x2 <= x1 or y2 <= y1:
                problems.append((where, f"box of zero or negative size ({x1},{y1},{x2},{y2})"))
            elif x1 < -1 or y1 < -1 or x2 > width + 1 or y2 > height + 1:
                problems.append(
                    (where, f"box ({x1},{y1},{x2},{y2}) outside the {width}x{height} image")
                )
            else:
                kept_boxes.append((max(0.0, x1), max(0.0, y1), min(width, x2), min(height, y2)))
                kept_labels.append(name)
        items.append(
            DetItem(str(image), tuple(kept_boxes), tuple(kept_labels), file_identity(image))
        )
    if problems and strict:
        where, reason = problems[0]
        raise TlcvError(
            f"{where}: {reason}",
            path=where.split(":")[0],
            hint=f"{len(problems)} problem(s); drop --strict to skip them",
        )
    found = sorted({n for it in items for n in it.labels})
    declared = [n for n in raw.names if n in found] if raw.names and mapping is None else []
    classes = declared or sorted(found, key=_natural)
    if not classes:
        raise TlcvError(
            f"no usable box under {root}",
            path=str(root),
            hint=problems[0][1] if problems else "annotate at least one object",
        )
    notes = [
        f"{fmt} annotations: {len(items)} images, "
        f"{sum(len(it.boxes) for it in items)} boxes, {len(classes)} classes"
    ]
    negatives = sum(1 for it in items if not it.boxes)
    if negatives:
        notes.append(f"{negatives} image(s) without boxes are used as negatives")
    if dropped:
        notes.append(f"{dropped} box(es) dropped by --class-map")
    if problems:
        notes.append(f"{len(problems)} annotation problem(s) skipped; see skipped.csv")
    return DetSource(str(root), {"all": items}, classes, fmt, notes, problems)


def _natural(name: str):
    return (0, int(name)) if name.isdigit() else (1, name)


def split_items(
    items: list[DetItem],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    shots: int | None = None,
    shots_seed: int = 0,
) -> dict:
    """A seeded random train/val/test split (negatives spread like the rest); ``shots`` keeps
    that many training images (the data-efficiency budget)."""
    order = sorted(items, key=lambda it: it.path)
    random.Random(seed).shuffle(order)
    n_test = round(test_fraction * len(order))
    n_val = round(val_fraction * len(order))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    if shots is not None and shots < len(train):
        train = random.Random(shots_seed).sample(train, shots)
    if not train:
        raise TlcvError("no training images left after the split")
    return {
        name: sorted(part, key=lambda it: it.path)
        for name, part in (("train", train), ("val", val), ("test", test))
    }


def is_detection_data(data: str | Path) -> bool:
    root = Path(data).expanduser()
    if root.is_file():
        return root.suffix.lower() == ".json" or root.name == "gt.txt"
    if not root.is_dir():
        return False
    return (
        (root / "gt.txt").is_file()
        or (root / "Annotations").is_dir()
        or ((root / "labels").is_dir() and (root / "images").is_dir())
        or any(root.glob("annotations*.json"))
        or any(root.glob("instances*.json"))
    )


# what the task contract looks for in a task's data module (tasks/__init__.py)
claims = is_detection_data
discover = discover_detection
