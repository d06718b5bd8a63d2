"""Segmentation data on disk: image/mask pairs, the class table, and every check a pair needs.

Layouts accepted by ``--data`` (``find_pairs``):
  DIR/images/ + DIR/masks/            matching stems (``X.jpg`` <-> ``X.png``, ``X_mask.png``, ...)
  DIR/{train,val,test}/images|masks   the same per split
  FILE.csv                            a manifest ``image,mask[,split]`` (paths relative to it)
Class tables and how masks are read: masks.py.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ...data.decode import IMAGE_SUFFIXES, file_identity, header_size, over_pixel_limit
from ...errors import TlcvError
from .masks import (  # noqa: F401 - IGNORE, MaskFormat, read_classes: the package's names here
    IGNORE,
    MaskFormat,
    adopt_binary,
    binary_format,
    binary_values,
    read_classes,
    table_file,
)

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
    table = table_file(root if root.is_dir() else root.parent)
    binary = binary_values([m for pairs in splits.values() for _, m in pairs[:8]])
    if table is None and binary is None:
        raise TlcvError(
            f"no classes.txt or classes.csv next to {root}",
            path=str(root),
            hint="write classes.txt (one class name a line, line i = mask value i) or "
            "classes.csv (name,r,g,b for colour-coded masks); 0/1 or 0/255 masks need none",
        )
    fmt = read_classes(table, ignore_index) if table else binary_format(binary)
    binary_notes = adopt_binary(fmt, binary, table)
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
