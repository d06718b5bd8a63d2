"""Where labelled images come from: ImageFolder trees (with optional split folders), CSV
manifests (``path,label``) and MedMNIST-style ``.npz`` files. Nothing is decoded here."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TlcvError
from .decode import IMAGE_SUFFIXES, ImageItem, file_identity

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class Source:
    """Items per split as found on disk (split "all" when the data has no split folders)."""

    root: str
    splits: dict[str, list[ImageItem]]
    classes: list[str]
    notes: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def all_items(self) -> list[ImageItem]:
        return [item for items in self.splits.values() for item in items]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


@dataclass(frozen=True)
class Members:
    """What a class folder holds for one kind of example (images at any depth, or clips), so
    images, clips and domains share one folder scanner."""

    noun: str  # "images", "clips": in messages
    # (a class folder, every path under it) -> its examples, sorted
    find: Callable[[Path, list[Path]], list[Path]]
    identity: Callable[[Path], str]  # content identity for caches (file_identity)


def _images_in(class_dir: Path, entries: list[Path]) -> list[Path]:
    return sorted(
        p for p in entries if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES
    )


IMAGES = Members("images", _images_in, file_identity)


def _scan_class_tree(
    root: Path, notes: list[str], strict: bool, members: Members
) -> tuple[list[ImageItem], list[str]]:
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose and members is IMAGES:
        notes.append(
            f"{root}: {len(loose)} image(s) lie directly in the folder, outside any class "
            f"folder, and are ignored (e.g. {loose[0]})"
        )
    items: list[ImageItem] = []
    classes: list[str] = []
    for class_dir in class_dirs:
        entries = list(class_dir.rglob("*"))  # walked once: examples and broken links
        files = members.find(class_dir, entries)
        # exists() is False for a link to nothing and for a link loop (ELOOP)
        broken = sorted(p for p in entries if p.is_symlink() and not p.exists())
        if broken:
            message = (
                f"{len(broken)} broken or looping symbolic link(s) in {class_dir} skipped: "
                + ", ".join(p.name for p in broken[:5])
                + (" ..." if len(broken) > 5 else "")
            )
            if strict:
                raise TlcvError(message, hint="fix or remove the links", path=str(broken[0]))
            notes.append(message)
        if not files:
            message = f"class folder {class_dir} holds no {members.noun}"
            if strict:
                raise TlcvError(
                    message, hint=f"add {members.noun} or remove the folder", path=str(class_dir)
                )
            notes.append(f"{message}; the class is left out")
            continue
        classes.append(class_dir.name)
        items.extend(ImageItem(str(p), class_dir.name, members.identity(p)) for p in files)
    return items, classes


def scan_folder(root: Path, strict: bool, members: Members = IMAGES) -> Source:
    """CLASS/ folders of ``members``, optionally inside train/ val/ test/ folders."""
    notes: list[str] = []
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and _visible(p)}
    split_dirs = {SPLIT_NAMES[k]: v for k, v in subdirs.items() if k in SPLIT_NAMES}
    if split_dirs and len(split_dirs) == len(subdirs):
        splits, class_sets = {}, {}
        for split, path in split_dirs.items():
            splits[split], class_sets[split] = _scan_class_tree(path, notes, strict, members)
        classes = sorted(set().union(*class_sets.values()))
    else:
        items, classes = _scan_class_tree(root, notes, strict, members)
        splits = {"all": items}
    return Source(str(root), splits, classes, notes)


def _from_csv(path: Path, strict: bool) -> Source:
    notes: list[str] = []
    missing: list[tuple[str, str]] = []
    splits: dict[str, list[ImageItem]] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in reader.fieldnames or []]
        if "path" not in fields or "label" not in fields:
            raise TlcvError(
                f"CSV manifest needs a header with 'path' and 'label' columns, found {fields}",
                hint="first line: path,label (optionally ,split)",
                path=str(path),
            )
        seen: dict[str, tuple[int, str]] = {}  # resolved file -> (line, label)
        for line_no, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            file = Path(row["path"])
            file = file if file.is_absolute() else path.parent / file
            if not file.is_file():
                reason = f"line {line_no}: file does not exist"
                if strict:
                    raise TlcvError(
                        f"{path} {reason}: {file}",
                        path=str(file),
                        hint="fix the path (relative paths are read from the CSV's folder)",
                    )
                missing.append((str(file), reason))
                continue
            problem = _bad_row(row, file, seen)
            if problem:
                if strict:
                    raise TlcvError(f"{path} line {line_no}: {problem}", path=str(path))
                missing.append((str(file), f"line {line_no}: {problem}"))
                continue
            seen[str(file.resolve())] = (line_no, row["label"])
            split = SPLIT_NAMES.get(row.get("split", "").lower(), "all")
            splits.setdefault(split, []).append(
                ImageItem(str(file), row["label"], file_identity(file))
            )
    if missing:
        notes.append(
            f"{path}: {len(missing)} row(s) skipped (missing files, empty labels, files listed "
            "twice); each is in skipped.csv with its line"
        )
    classes = sorted({item.label for items in splits.values() for item in items})
    return Source(str(path), splits, classes, notes, missing)


def _bad_row(row: dict, file: Path, seen: dict[str, tuple[int, str]]) -> str | None:
    """Why a manifest row cannot be used (None: it can)."""
    if not row["label"]:
        return "empty label"
    first = seen.get(str(file.resolve()))
    if first is not None:
        line, label = first
        same = "the same label" if label == row["label"] else f"label {label!r}"
        return f"{file} is already listed on line {line} (with {same}); the first row is used"
    return None


def _from_npz(path: Path) -> Source:
    with np.load(path, allow_pickle=False) as data:
        names = set(data.files)
        splits: dict[str, list[ImageItem]] = {}
        identity = file_identity(path)
        for split in ("train", "val", "test"):
            if f"{split}_images" not in names:
                continue
            if f"{split}_labels" not in names:
                raise TlcvError(f"{path} has {split}_images but no {split}_labels", path=str(path))
            labels = np.asarray(data[f"{split}_labels"]).reshape(len(data[f"{split}_labels"]), -1)
            n_images = len(data[f"{split}_images"])
            if len(labels) != n_images:
                raise TlcvError(
                    f"{path}: {split}_images holds {n_images} images but {split}_labels "
                    f"{len(labels)} labels",
                    hint="the arrays must have one label per image, in the same order",
                    path=str(path),
                )
            if labels.shape[1] != 1:
                raise TlcvError(
                    f"{path}: multi-label {split}_labels are not supported", path=str(path)
                )
            splits[split] = [
                ImageItem(f"{path}::{split}[{i}]", str(int(lab)), f"{identity}::{split}[{i}]")
                for i, lab in enumerate(labels[:, 0])
            ]
    if not splits:
        raise TlcvError(
            f"{path} holds no train_images / val_images / test_images arrays",
            hint="expected the MedMNIST layout",
            path=str(path),
        )
    classes = sorted({it.label for items in splits.values() for it in items}, key=int)
    return Source(str(path), splits, classes)


def discover(data: str | Path, *, strict: bool = False) -> Source:
    """Find the labelled images under ``data`` (a folder, a .csv or a .npz)."""
    path = Path(data).expanduser()
    if not path.exists():
        raise TlcvError(
            f"data path does not exist: {path}",
            path=str(path),
            hint="give a folder of CLASS/ sub-folders, a CSV manifest or a .npz file",
        )
    if path.is_file() and path.suffix.lower() == ".csv":
        source = _from_csv(path, strict)
    elif path.is_file() and path.suffix.lower() == ".npz":
        source = _from_npz(path)
    elif path.is_dir():
        source = scan_folder(path, strict)
    else:
        raise TlcvError(
            f"cannot read data from {path}",
            path=str(path),
            hint="expected a folder, a .csv manifest or a .npz file",
        )
    if not source.all_items():
        raise TlcvError(
            f"no images found under {path}",
            path=str(path),
            hint="expected CLASS/image.jpg sub-folders (or train/ val/ test/ "
            f"folders of them); image types: {', '.join(sorted(IMAGE_SUFFIXES))}",
        )
    return source
