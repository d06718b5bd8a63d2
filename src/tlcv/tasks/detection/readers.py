"""The box formats users bring, read without trusting them (data.py checks the boxes against
their images afterwards).

Every number must be finite, every class id must name a declared class, every JSON / YAML
field must have the type the format gives it, and every image path must stay inside the data
folder (``--allow-outside-data`` lifts that). What fails is listed with its file and line or
field (``_Raw.problems`` -> skipped.csv); a file that cannot be read at all is one error.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ...data.annotations import finite, load_yaml, outside_reason, read_utf8, stream_json
from ...data.decode import IMAGE_SUFFIXES
from ...errors import TlcvError


@dataclass
class _Raw:
    """Boxes as read, before checks: image -> [(x1, y1, x2, y2, class, where)]."""

    root: Path  # the data folder every image must stay inside
    allow_outside: bool = False
    boxes: dict[Path, list[tuple]] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # declared class order, when the format has one

    def image(self, folder: Path, name: str, where: str) -> Path | None:
        """``folder/name`` when it stays inside the data folder; None (and named) otherwise."""
        path = folder / name
        why = outside_reason(path, self.root, self.allow_outside)
        if why:
            self.problems.append((where, why))
            return None
        return path

    def add(self, image: Path, box: tuple | None = None) -> None:
        self.boxes.setdefault(image, [])
        if box is not None:
            self.boxes[image].append(box)


def _images_in(folder: Path, raw: _Raw) -> list[Path]:
    """The image files of ``folder``; links that lead out of the data folder are named."""
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        why = outside_reason(p, raw.root, raw.allow_outside)
        if why:
            raw.problems.append((str(p), why))
        else:
            out.append(p)
    return out


def _read_box_list(file: Path, raw: _Raw) -> None:
    text = read_utf8(file)
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
            x1, y1, x2, y2 = (
                finite(c, name) for c, name in zip(row[1:5], ("x1", "y1", "x2", "y2"), strict=True)
            )
        except ValueError as exc:
            if line_no > 1 or "finite" in str(exc):  # the first line may be a header
                kind = "finite numbers" if "finite" in str(exc) else "numbers"
                raw.problems.append((where, f"coordinates are not {kind}: {exc}"))
            continue
        image = raw.image(folder, row[0].strip(), where)
        if image is not None:
            raw.add(image, (x1, y1, x2, y2, row[5].strip(), where))
    for image in _images_in(folder, raw):  # listed nowhere: a negative image
        raw.add(image)


def _read_voc(xml_files: list[Path], image_dir: Path | None, raw: _Raw) -> None:
    for file in xml_files:
        try:
            root = ET.parse(file).getroot()
        except (ET.ParseError, OSError) as exc:
            raw.problems.append((str(file), f"does not parse: {exc}"))
            continue
        name = root.findtext("filename") or (file.stem + ".jpg")
        image = raw.image(image_dir or file.parent, name.strip(), f"{file}: <filename>")
        if image is None:
            continue
        raw.add(image)
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            try:
                if box is None:
                    raise ValueError("no <bndbox>")
                coords = [finite(box.findtext(k), f"<{k}>") for k in "xmin ymin xmax ymax".split()]
            except ValueError as exc:
                raw.problems.append((str(file), f"an <object>'s box: {exc}"))
                continue
            raw.add(image, (*coords, (obj.findtext("name") or "").strip(), str(file)))


def _field(record: dict, key: str, kinds, where: str):
    """``record[key]`` when it is of one of ``kinds``; ValueError naming the field otherwise."""
    if key not in record:
        raise ValueError(f"{where} has no {key!r}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ValueError(f"{where}: {key!r} is {type(value).__name__} ({str(value)[:40]!r})")
    return value


def _coco_tables(file: Path) -> tuple[dict[int, str], dict[int, str], Iterable]:
    """images id -> file_name, categories id -> name, annotations (streamed), type-checked."""
    tables = stream_json(file, ("images", "categories"), "annotations", "COCO annotation file")
    try:
        if not isinstance(tables, dict):
            raise ValueError(f"the top level is {_kind_name(tables)}, not an object")
        for key in ("images", "categories", "annotations"):
            value = tables[key]
            if key == "annotations" and value is None:
                tables[key] = iter(())
            elif isinstance(value, type) or not isinstance(value, list | Iterator):
                raise ValueError(f"'{key}' is {_kind_name(value)}, not a list")
        images, names = {}, {}
        for i, im in enumerate(tables["images"]):
            where = f"images[{i}]"
            if not isinstance(im, dict):
                raise ValueError(f"{where} is {type(im).__name__}, not an object")
            images[_field(im, "id", int, where)] = _field(im, "file_name", str, where)
        for i, cat in enumerate(tables["categories"]):
            where = f"categories[{i}]"
            if not isinstance(cat, dict):
                raise ValueError(f"{where} is {type(cat).__name__}, not an object")
            names[_field(cat, "id", int, where)] = str(_field(cat, "name", str | int, where))
    except ValueError as exc:
        raise TlcvError(
            f"{file} is not a COCO annotation file: {exc}",
            path=str(file),
            hint="COCO needs images [{id, file_name}], categories [{id, name}], annotations "
            "[{image_id, category_id, bbox}]",
        ) from exc
    return images, names, tables["annotations"]


def _kind_name(value) -> str:
    """A JSON value's Python type name, whether given as a value or (streamed) as its type."""
    return (value if isinstance(value, type) else type(value)).__name__


def _read_coco(file: Path, raw: _Raw) -> None:
    images, names, annotations = _coco_tables(file)
    raw.names = [names[k] for k in sorted(names)]
    folder = file.parent / "images" if (file.parent / "images").is_dir() else file.parent
    paths = {}
    for image_id, name in images.items():
        path = raw.image(folder, name, f"{file}: image {image_id} file_name")
        if path is not None:
            paths[image_id] = path
            raw.add(path)
    for i, ann in enumerate(annotations):
        label = ann.get("id", i) if isinstance(ann, dict) else i
        where = f"{file}: annotation {str(label)[:40]} (annotations[{i}])"
        try:
            if not isinstance(ann, dict):
                raise ValueError(f"is {type(ann).__name__}, not an object")
            bbox = _field(ann, "bbox", list, "it")
            if len(bbox) != 4:
                raise ValueError(f"'bbox' has {len(bbox)} numbers, not 4 (x, y, width, height)")
            x, y, w, h = (finite(v, f"bbox[{j}]") for j, v in enumerate(bbox))
            image_id = _field(ann, "image_id", int, "it")
            category = _field(ann, "category_id", int, "it")
            if image_id not in images:
                raise ValueError(f"image_id {image_id} is not among the images")
            if category not in names:
                raise ValueError(f"category_id {category} is not among the categories")
        except ValueError as exc:
            raw.problems.append((where, f"malformed: {exc}"))
            continue
        if image_id in paths:  # an image outside the folder is named once, above
            raw.add(paths[image_id], (x, y, x + w, y + h, names[category], where))


def _yolo_names(root: Path) -> list[str]:
    names_file = root / "classes.txt"
    if names_file.is_file():
        return [n.strip() for n in read_utf8(names_file).splitlines() if n.strip()]
    if not (root / "data.yaml").is_file():
        return []
    declared = load_yaml(root / "data.yaml")
    names = declared.get("names", []) if isinstance(declared, dict) else None
    if isinstance(names, dict):
        names = (
            [names[k] for k in sorted(names)] if all(isinstance(k, int) for k in names) else None
        )
    if not isinstance(names, list) or not all(isinstance(n, str | int) for n in names):
        raise TlcvError(
            f"{root / 'data.yaml'}: 'names' is {type(names).__name__}, not a list of class names",
            path=str(root / "data.yaml"),
            hint="write the class names as a list: names: [cat, dog]",
        )
    return [str(n) for n in names]


def _read_yolo(root: Path, raw: _Raw) -> None:
    raw.names = _yolo_names(root)
    for image in _images_in(root / "images", raw):
        raw.add(image)
        labels = root / "labels" / f"{image.stem}.txt"
        if not labels.is_file():
            continue
        try:
            text = read_utf8(labels)
            width, height = Image.open(image).size
        except TlcvError as exc:
            raw.problems.append((str(labels), exc.message))
            continue
        except OSError:
            continue  # reported by the image check
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{labels}:{line_no}"
            parts = line.split()
            try:
                if len(parts) < 5:
                    raise ValueError("expected: class cx cy w h")
                k = int(parts[0])
                cx, cy, w, h = (
                    finite(v, n) for v, n in zip(parts[1:5], ("cx", "cy", "w", "h"), strict=True)
                )
                if k < 0 or (raw.names and k >= len(raw.names)):
                    declared = f"0-{len(raw.names) - 1}" if raw.names else "0 or more"
                    raise ValueError(f"class id {k} is not a declared class ({declared})")
            except ValueError as exc:
                raw.problems.append((where, str(exc)))
                continue
            name = raw.names[k] if raw.names else str(k)
            box = ((cx - w / 2) * width, (cy - h / 2) * height,
                   (cx + w / 2) * width, (cy + h / 2) * height)  # fmt: skip
            raw.add(image, (*box, name, where))


def read_boxes(data: Path, allow_outside: bool = False) -> tuple[_Raw, str]:
    """Every image and box the annotations hold, and the format's name."""
    raw = _Raw(data.parent if data.is_file() else data, allow_outside)
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
