"""Segmentation data on disk: image/mask pairs, the class table, and every check a pair needs.

Layouts accepted by ``--data`` (``find_pairs``):
  DIR/images/ + DIR/masks/            matching stems (``X.jpg`` <-> ``X.png``, ``X_mask.png``, ...)
  DIR/{train,val,test}/images|masks   the same per split
  FILE.csv                            a manifest ``image,mask[,split]`` (paths relative to it)
Class tables (``read_classes``): ``classes.txt`` (one name per line, line i = mask value i) or
``classes.csv`` (``name,r,g,b``: RGB colour-coded masks), in DIR or its parent. Rows named
void / unlabelled / ignore mark void; so does ``--ignore-index`` (default 255).
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ...data.decode import IMAGE_SUFFIXES, file_identity, header_size, over_pixel_limit
from ...errors import TlcvError

IGNORE = 255  # void pixels in the masks the model trains on (uint8)
VOID_NAMES = frozenset({"void", "unlabelled", "unlabeled", "ignore", "background-void"})
MASK_SUFFIXES = ("", "_mask", "_L", "_label", "_labels", "_gt", "_seg")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SegItem:
    """One labelled image: the photo and its mask (``mask`` None for unlabelled inputs)."""

    path: str
    mask: str | None
    identity: str
    label: None = None  # the classification fields callers share (never a class here)


@dataclass
class MaskFormat:
    """How a mask file becomes class indices: a lookup of raw values (index masks) or colours
    (RGB masks) to class index / IGNORE; anything else is a bad mask."""

    classes: list[str]
    kind: str  # "index" or "rgb"
    lut: dict[int, int]  # raw value (index) or 0xRRGGBB (rgb) -> class index or IGNORE
    source: str  # the class table's path, or "" when classes were inferred

    def to_dict(self) -> dict:
        return {
            "classes": self.classes,
            "kind": self.kind,
            "source": self.source,
            "lut": {str(k): v for k, v in self.lut.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> MaskFormat:
        return cls(
            list(data["classes"]),
            str(data["kind"]),
            {int(k): int(v) for k, v in data["lut"].items()},
            str(data.get("source", "")),
        )

    def decode(self, path: str) -> np.ndarray:
        """Class indices (uint8, IGNORE for void); ValueError names what is wrong."""
        with Image.open(path) as img:
            img.load()
            if self.kind == "rgb":
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
                raw = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            else:
                if img.mode not in ("L", "P", "I", "I;16", "1"):
                    raise ValueError(
                        f"mask has {img.mode} pixels, not class indices (colour-coded masks "
                        "need a classes.csv with name,r,g,b)"
                    )
                raw = np.asarray(img, dtype=np.int64)
        values = np.unique(raw)
        unknown = [int(v) for v in values if int(v) not in self.lut]
        if unknown:
            shown = [f"#{v:06x}" if self.kind == "rgb" else str(v) for v in unknown[:5]]
            raise ValueError(
                f"mask value(s) {', '.join(shown)} are neither a class nor void"
                + (
                    f" (if {shown[0]} marks unlabelled pixels, pass --ignore-index {shown[0]})"
                    if self.kind == "index"
                    else " (add the colour to classes.csv)"
                )
            )
        table = np.zeros(int(values.max()) + 1, dtype=np.uint8)
        for v in values:
            table[int(v)] = self.lut[int(v)]
        return table[raw] if self.kind == "index" else _map_sparse(raw, values, self.lut)


def _map_sparse(raw: np.ndarray, values: np.ndarray, lut: dict[int, int]) -> np.ndarray:
    index = np.searchsorted(values, raw)
    return np.array([lut[int(v)] for v in values], dtype=np.uint8)[index]


@dataclass
class SegSource:
    """Pairs per split as found on disk (split "all" when the data has none)."""

    root: str
    splits: dict[str, list[SegItem]]
    format: MaskFormat
    notes: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def classes(self) -> list[str]:
        return self.format.classes

    def all_items(self) -> list[SegItem]:
        return [item for items in self.splits.values() for item in items]


def _table_file(root: Path) -> Path | None:
    for folder in (root, root.parent):
        for name in ("classes.csv", "classes.txt"):
            if (folder / name).is_file():
                return folder / name
    return None


def read_classes(file: Path, ignore_index: int) -> MaskFormat:
    """The class table: names in mask-value order, void rows and ``ignore_index`` -> IGNORE."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TlcvError(f"cannot read the class table {file}: {exc}", path=str(file)) from exc
    lut: dict[int, int] = {ignore_index: IGNORE}
    classes: list[str] = []
    if file.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
        if rows and not (len(rows[0]) > 1 and rows[0][1].strip().isdigit()):
            rows = rows[1:]  # a header
        for line, row in enumerate(rows, start=1):
            try:
                name, r, g, b = (c.strip() for c in row[:4])
                colour = (int(r) << 16) | (int(g) << 8) | int(b)
            except ValueError as exc:
                raise TlcvError(
                    f"{file}, row {line}: expected name,r,g,b, got {','.join(row)!r}",
                    path=str(file),
                    hint="one class a row: name,r,g,b (0-255 each)",
                ) from exc
            lut[colour] = IGNORE if name.lower() in VOID_NAMES else _index(classes, name)
        kind = "rgb"
        lut.pop(ignore_index, None)  # an ignore *index* means nothing for colour masks
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for value, name in enumerate(names):
            if value != ignore_index:
                lut[value] = IGNORE if name.lower() in VOID_NAMES else _index(classes, name)
        kind = "index"
    if len(classes) < 1 or len(classes) >= IGNORE:
        raise TlcvError(
            f"{file} lists {len(classes)} classes; 1 to 254 are supported", path=str(file)
        )
    return MaskFormat(classes, kind, lut, str(file))


def _index(classes: list[str], name: str) -> int:
    if name not in classes:
        classes.append(name)
    return classes.index(name)


def _mask_for(image: Path, masks: dict[str, Path]) -> Path | None:
    for suffix in MASK_SUFFIXES:
        found = masks.get(image.stem + suffix)
        if found is not None:
            return found
    return None


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _pair_folder(folder: Path, missing: list[tuple[str, str]]) -> list[tuple[Path, Path]]:
    images, masks = _files(folder / "images"), _files(folder / "masks")
    by_stem = {m.stem: m for m in masks}
    pairs, used = [], set()
    for image in images:
        mask = _mask_for(image, by_stem)
        if mask is None:
            missing.append((str(image), "no mask with the same name in masks/"))
        else:
            pairs.append((image, mask))
            used.add(mask)
    missing.extend((str(m), "a mask without an image in images/") for m in masks if m not in used)
    return pairs


def find_pairs(data: Path) -> tuple[dict[str, list[tuple[Path, Path]]], list[tuple[str, str]]]:
    """(image, mask) paths per split, and the files that have no partner."""
    missing: list[tuple[str, str]] = []
    if data.is_file() and data.suffix.lower() == ".csv":
        return _manifest_pairs(data, missing), missing
    if (data / "images").is_dir() and (data / "masks").is_dir():
        return {"all": _pair_folder(data, missing)}, missing
    splits = {
        s: _pair_folder(data / s, missing)
        for s in SPLITS
        if (data / s / "images").is_dir() and (data / s / "masks").is_dir()
    }
    if not splits:
        raise TlcvError(
            f"{data} holds no segmentation data",
            path=str(data),
            hint="expected images/ + masks/ folders (optionally inside train/ val/ test/) or a "
            "CSV manifest image,mask[,split]",
        )
    return splits, missing


def _manifest_pairs(file: Path, missing: list[tuple[str, str]]) -> dict[str, list]:
    try:
        rows = list(csv.reader(file.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise TlcvError(f"cannot read {file}: {exc}", path=str(file)) from exc
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["image", "mask"]:
        rows = rows[1:]
    out: dict[str, list] = {}
    for line, row in enumerate(rows, start=2):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 2:
            missing.append((f"{file}:{line}", "expected image,mask[,split]"))
            continue
        image, mask = (file.parent / row[0].strip()), (file.parent / row[1].strip())
        split = row[2].strip().lower() if len(row) > 2 and row[2].strip() else "all"
        if split not in (*SPLITS, "all"):
            missing.append((f"{file}:{line}", f"unknown split {split!r} (train, val or test)"))
        elif not image.is_file() or not mask.is_file():
            gone = image if not image.is_file() else mask
            missing.append((str(gone), f"listed in {file.name} line {line} but not found"))
        else:
            out.setdefault(split, []).append((image, mask))
    if not out:
        raise TlcvError(f"{file} lists no usable image,mask pair", path=str(file))
    return out


def check_pair(image: Path, mask: Path, fmt: MaskFormat) -> str | None:
    """Why a pair cannot be used (unreadable, sizes differ, values not in the table), or None."""
    try:
        size, mask_size = header_size(image), header_size(mask)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot read: {str(exc).splitlines()[0][:120]}"
    if size != mask_size:
        return f"image is {size[0]}x{size[1]} but its mask {mask_size[0]}x{mask_size[1]}"
    too_big = over_pixel_limit(size, "the pair")  # from the headers: nothing decoded yet
    if too_big:
        return too_big
    try:
        fmt.decode(str(mask))
    except (OSError, ValueError) as exc:
        return f"{mask.name}: {exc}"
    return None


def discover_segmentation(
    data: str | Path, *, strict: bool = False, ignore_index: int = IGNORE
) -> SegSource:
    """Every usable pair under ``data``; unusable ones are listed (or fatal with ``strict``)."""
    root = Path(data).expanduser()
    if not root.exists():
        raise TlcvError(f"{root} does not exist", path=str(root), hint="check the --data path")
    splits, missing = find_pairs(root)
    table = _table_file(root if root.is_dir() else root.parent)
    binary = _binary_values([m for pairs in splits.values() for _, m in pairs[:8]])
    if table is None and binary is None:
        raise TlcvError(
            f"no classes.txt or classes.csv next to {root}",
            path=str(root),
            hint="write classes.txt (one class name a line, line i = mask value i) or "
            "classes.csv (name,r,g,b for colour-coded masks); 0/1 or 0/255 masks need none",
        )
    fmt = read_classes(table, ignore_index) if table else _binary_format(binary)
    binary_notes = _adopt_binary(fmt, binary, table)
    usable: dict[str, list[SegItem]] = {}
    for split, pairs in splits.items():
        for image, mask in pairs:
            reason = check_pair(image, mask, fmt)
            if reason is None:
                usable.setdefault(split, []).append(
                    SegItem(str(image), str(mask), file_identity(image))
                )
            else:
                missing.append((str(image), reason))
    if missing and strict:
        path, reason = missing[0]
        raise TlcvError(
            f"{path}: {reason}",
            path=path,
            hint=f"{len(missing)} unusable file(s); drop --strict to skip them",
        )
    if not any(usable.values()):
        first = f" (first: {missing[0][0]}: {missing[0][1]})" if missing else ""
        raise TlcvError(f"no usable image/mask pair under {root}{first}", path=str(root))
    notes = [f"{len(missing)} file(s) left out; see skipped.csv"] if missing else []
    return SegSource(str(root), usable, fmt, binary_notes + notes, missing)


def _binary_values(masks: list[Path]) -> int | None:
    """The foreground value (1 or 255) when the sampled masks are two-valued 0/1 or 0/255
    (lesion masks as most tools save them), else None."""
    seen: set[int] = set()
    for mask in masks:
        try:
            with Image.open(mask) as img:
                if img.mode not in ("L", "P", "1"):
                    return None
                seen |= {int(v) for v in np.unique(np.asarray(img.convert("L")))}
        except (OSError, ValueError):
            continue
    for value in (1, 255):
        if value in seen and seen <= {0, value}:
            return value
    return None


def _binary_format(value: int) -> MaskFormat:
    return MaskFormat(["background", "foreground"], "index", {0: 0, value: 1}, "")


def _adopt_binary(fmt: MaskFormat, value: int | None, table: Path | None) -> list[str]:
    """Two-class tables take 0/255 masks too: 255 becomes the foreground there, not void (0/255
    masks with no 1 anywhere in the sample cannot mean 'every lesion pixel is void')."""
    if table is None:
        return [f"no class table: 0/{value} masks read as background / foreground"]
    if value == 255 and fmt.kind == "index" and len(fmt.classes) == 2:
        fmt.lut[255] = 1
        return [f"masks hold 0/255: 255 read as {fmt.classes[1]!r} (two-class table)"]
    return []


def is_segmentation_data(data: str | Path) -> bool:
    root = Path(data).expanduser()
    if root.is_file():
        if root.suffix.lower() != ".csv":
            return False
        try:
            head = root.read_text(encoding="utf-8").splitlines()[:1]
        except (OSError, UnicodeDecodeError):
            return False
        return bool(head) and [c.strip().lower() for c in head[0].split(",")[:2]] == [
            "image",
            "mask",
        ]
    if not root.is_dir():
        return False
    return any(
        (folder / "images").is_dir() and (folder / "masks").is_dir()
        for folder in (root, *(root / s for s in SPLITS))
    )


def split_pairs(
    source: SegSource,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    shots: int | None = None,
    shots_seed: int = 0,
) -> tuple[dict, list[str]]:
    """train/val/test: the data's own split folders, else a random split by ``seed``.
    ``shots`` keeps that many training images, drawn by ``shots_seed`` (the data-efficiency
    budget counts images here)."""
    parts, notes = source.splits, []
    if "train" in parts:
        train, val, test = (
            list(parts["train"]),
            list(parts.get("val", [])),
            list(parts.get("test", [])),
        )
        if not val:
            train, val = _cut(train, val_fraction, seed)
            notes.append(f"no val/ split: {len(val)} training images held out for validation")
    else:
        pool = [it for items in parts.values() for it in items]
        train, test = _cut(pool, test_fraction, seed)
        train, val = _cut(train, val_fraction / max(1e-9, 1 - test_fraction), seed + 1)
    if shots is not None and shots < len(train):
        train = sorted(random.Random(shots_seed).sample(train, shots), key=lambda it: it.path)
        notes.append(f"{shots} training images used (of those available)")
    if not train:
        raise TlcvError("no training images left after the split", hint="add image/mask pairs")
    return {"train": train, "val": val, "test": test}, notes


def _cut(items: list[SegItem], fraction: float, seed: int) -> tuple[list, list]:
    if fraction <= 0 or len(items) < 2:
        return items, []
    order = list(items)
    random.Random(seed).shuffle(order)
    n = min(len(order) - 1, max(1, round(fraction * len(order))))
    return sorted(order[n:], key=lambda it: it.path), sorted(order[:n], key=lambda it: it.path)


# what the task contract looks for in a task's data module (tasks/__init__.py)
claims = is_segmentation_data
discover = discover_segmentation
