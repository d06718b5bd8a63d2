"""Detection data on disk: images and their boxes in the formats users bring.

``--data`` may be (``read_boxes``):
  DIR with a box list (``gt.txt`` / ``*.csv`` / ``*.txt``: ``file;x1;y1;x2;y2;class``, ``;`` or
      ``,`` separated, header optional; GTSDB's own format) and images in DIR/images or DIR
  DIR with Pascal VOC XML (``Annotations/*.xml`` + ``JPEGImages/``, or XML beside the images)
  a COCO JSON file (or DIR holding one: ``annotations.json`` / ``instances*.json``)
  DIR with YOLO labels (``images/`` + ``labels/*.txt``: ``class cx cy w h`` in 0-1, class
  names from ``classes.txt`` / ``data.yaml``)
Images listed with no box are kept as negatives. Every box is checked against its image
(inside it, positive size, a known class); what fails is listed with the file and line.
"""

from __future__ import annotations

import csv
import json
import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ...data.decode import IMAGE_SUFFIXES, file_identity
from ...errors import TlcvError

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


@dataclass
class _Raw:
    """Boxes as read, before checks: image -> [(x1, y1, x2, y2, class, where)]."""

    boxes: dict[Path, list[tuple]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # declared class order, when the format has one

    def add(self, image: Path, box: tuple | None = None) -> None:
        self.boxes.setdefault(image, [])
        if box is not None:
            self.boxes[image].append(box)


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _number(text: str) -> float:
    return float(text.strip())


def _read_box_list(file: Path, raw: _Raw) -> None:
    text = file.read_text(encoding="utf-8", errors="replace")
    delimiter = ";" if text.count(";") >= text.count(",") else ","
    folder = file.parent / "images" if (file.parent / "images").is_dir() else file.parent
    for line_no, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1):
        if not row or not any(c.strip() for c in row):
            continue
        where = f"{file}:{line_no}"
        if len(row) < 6:
            if line_no > 1:
                raw.problems.append(
                    (where, f"expected file;x1;y1;x2;y2;class, got {len(row)} fields")
                )
            continue
        try:
            x1, y1, x2, y2 = (_number(c) for c in row[1:5])
        except ValueError:
            if line_no > 1:  # the first line may be a header
                raw.problems.append((where, "coordinates are not numbers"))
            continue
        raw.add(folder / row[0].strip(), (x1, y1, x2, y2, row[5].strip(), where))
    for image in _images_in(folder):  # listed nowhere: a negative image
        raw.add(image)


def _read_voc(xml_files: list[Path], image_dir: Path | None, raw: _Raw) -> None:
    for file in xml_files:
        try:
            root = ET.parse(file).getroot()
        except (ET.ParseError, OSError) as exc:
            raw.problems.append((str(file), f"does not parse: {exc}"))
            continue
        name = root.findtext("filename") or (file.stem + ".jpg")
        image = (image_dir or file.parent) / name.strip()
        raw.add(image)
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            try:
                coords = [_number(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (AttributeError, TypeError, ValueError):
                raw.problems.append((str(file), "an <object> without numeric <bndbox>"))
                continue
            raw.add(image, (*coords, (obj.findtext("name") or "").strip(), str(file)))


def _read_coco(file: Path, raw: _Raw) -> None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        images = {int(im["id"]): im["file_name"] for im in data["images"]}
        names = {int(c["id"]): str(c["name"]) for c in data["categories"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TlcvError(f"{file} is not a COCO annotation file: {exc}", path=str(file)) from exc
    raw.names = [names[k] for k in sorted(names)]
    folder = file.parent / "images" if (file.parent / "images").is_dir() else file.parent
    for name in images.values():
        raw.add(folder / name)
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"{file}: annotation {ann.get('id', i)}"
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            image = folder / images[int(ann["image_id"])]
            name = names.get(int(ann["category_id"]), str(ann["category_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            raw.problems.append((where, f"malformed ({exc})"))
            continue
        raw.add(image, (x, y, x + w, y + h, name, where))


def _read_yolo(root: Path, raw: _Raw) -> None:
    names_file = root / "classes.txt"
    if names_file.is_file():
        raw.names = [n.strip() for n in names_file.read_text().splitlines() if n.strip()]
    elif (root / "data.yaml").is_file():
        import yaml

        declared = (yaml.safe_load((root / "data.yaml").read_text()) or {}).get("names", [])
        raw.names = list(declared.values()) if isinstance(declared, dict) else list(declared)
    for image in _images_in(root / "images"):
        raw.add(image)
        labels = root / "labels" / f"{image.stem}.txt"
        if not labels.is_file():
            continue
        try:
            width, height = Image.open(image).size
        except OSError:
            continue  # reported by the image check
        for line_no, line in enumerate(labels.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{labels}:{line_no}"
            parts = line.split()
            try:
                k, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:5])
                name = raw.names[k] if raw.names else str(k)
            except (ValueError, IndexError):
                raw.problems.append((where, "expected: class cx cy w h"))
                continue
            box = (
                (cx - w / 2) * width,
                (cy - h / 2) * height,
                (cx + w / 2) * width,
                (cy + h / 2) * height,
            )
            raw.add(image, (*box, name, where))


def read_boxes(data: Path) -> tuple[_Raw, str]:
    """Every image and box the annotations hold, and the format's name."""
    raw = _Raw()
    if data.is_file():
        if data.suffix.lower() == ".json":
            _read_coco(data, raw)
            return raw, "coco"
        _read_box_list(data, raw)
        return raw, "box list"
    if not data.is_dir():
        raise TlcvError(f"{data} does not exist", path=str(data), hint="check the --data path")
    coco = sorted([*data.glob("annotations*.json"), *data.glob("instances*.json")])
    if coco:
        _read_coco(coco[0], raw)
        return raw, "coco"
    if (data / "Annotations").is_dir():
        _read_voc(sorted((data / "Annotations").glob("*.xml")), data / "JPEGImages", raw)
        return raw, "pascal voc"
    if (data / "labels").is_dir() and (data / "images").is_dir():
        _read_yolo(data, raw)
        return raw, "yolo"
    lists = [data / "gt.txt"] if (data / "gt.txt").is_file() else sorted(data.glob("*.csv"))
    if lists:
        _read_box_list(lists[0], raw)
        return raw, "box list"
    xml = sorted(data.glob("*.xml"))
    if xml:
        _read_voc(xml, None, raw)
        return raw, "pascal voc"
    raise TlcvError(
        f"{data} holds no detection annotations",
        path=str(data),
        hint="expected gt.txt / a CSV box list (file;x1;y1;x2;y2;class), Pascal VOC XML, a "
        "COCO JSON file or YOLO images/ + labels/",
    )


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
    data: str | Path, *, strict: bool = False, class_map: str | Path | None = None
) -> DetSource:
    """Checked images and boxes; problems listed (file and line) or fatal with ``strict``."""
    root = Path(data).expanduser()
    raw, fmt = read_boxes(root)
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
