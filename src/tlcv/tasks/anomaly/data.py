"""Anomaly data on disk: defect-free training images, and test images by kind with optional
ground-truth masks.

Layouts accepted by ``--data``:
  DIR/train/good/ + DIR/test/<kind>/ [+ DIR/ground_truth/<kind>/<stem>_mask.png]   (MVTec AD)
      ``test/good/`` holds defect-free test images, every other folder one kind of defect;
      an optional ``val/`` (same shape as ``test/``) is the labelled validation split that
      sets the threshold (F1-optimal) instead of the held-out good images.
  DIR/good/ + DIR/<kind>/ [+ DIR/ground_truth/...]    a labelled set (what `tlcv evaluate` scores)
  DIR/*.jpg                                           a plain folder of defect-free images
Masks: non-zero pixels are defective; a mask must have its image's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ...data.annotations import inside
from ...data.decode import IMAGE_SUFFIXES, file_identity, header_size, over_pixel_limit
from ...errors import TlcvError

GOOD = "good"
MASK_SUFFIXES = ("_mask", "", "_gt", "_label")


@dataclass(frozen=True)
class AnomalyItem:
    """One image: its kind ("good" or a defect's folder name) and its mask file, if any."""

    path: str
    kind: str
    mask: str | None
    identity: str

    @property
    def defective(self) -> bool:
        return self.kind != GOOD


@dataclass
class AnomalySource:
    """What discover() found: good training images, labelled val / test items, and notes."""

    root: str
    train: list[AnomalyItem]
    val: list[AnomalyItem]
    test: list[AnomalyItem]
    masks: bool  # the data has a ground_truth/ folder (pixel metrics are possible)
    notes: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    @property
    def labelled_val(self) -> bool:
        """val/ holds good and defective images: the threshold can be F1-optimal there."""
        return any(i.defective for i in self.val) and any(not i.defective for i in self.val)


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _kinds(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def claims(data: str | Path) -> bool:
    """MVTec layout: a train/good/ folder beside a test/ folder."""
    root = Path(data)
    return (root / "train" / GOOD).is_dir() and (root / "test").is_dir()


def _mask_of(image: Path, kind: str, truth: Path | None, root: Path) -> tuple[str | None, str]:
    """(mask path or None, why not): ground_truth/<kind>/<stem>{_mask,...}.<any image ext>."""
    if truth is None or kind == GOOD:
        return None, ""
    folder = truth / kind
    if not folder.is_dir():
        return None, f"no ground_truth/{kind}/ folder"
    for suffix in MASK_SUFFIXES:
        for ext in (".png", ".bmp", ".tif", ".tiff", ".jpg", image.suffix):
            found = folder / f"{image.stem}{suffix}{ext}"
            if found.is_file():
                if not inside(found, root):
                    return None, f"{found} points outside the data folder"
                return str(found), ""
    return None, f"no mask for it in ground_truth/{kind}/"


def check_mask(item: AnomalyItem) -> str | None:
    """Why an item's mask cannot be used (unreadable, not its image's size), or None."""
    try:
        size, mask_size = header_size(item.path), header_size(item.mask)
        too_big = over_pixel_limit(mask_size, "mask")  # from the header, before decoding
        if too_big:
            return too_big
        with Image.open(item.mask) as mask:
            mask.load()  # the pixels too: evaluation must not meet a truncated file
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot read the image or its mask: {str(exc).splitlines()[0][:120]}"
    if size != mask_size:
        return (
            f"mask {Path(item.mask).name} is {mask_size[0]}x{mask_size[1]} but its image "
            f"{size[0]}x{size[1]}"
        )
    return None


def _labelled(folder: Path, truth: Path | None, root: Path, source: AnomalySource) -> list:
    """Items of a folder of kind folders (good/, crack/, ...), masks looked up and checked."""
    items = []
    for kind_dir in _kinds(folder):
        kind = kind_dir.name
        files = _images(kind_dir)
        if not files:
            source.notes.append(f"{kind_dir} holds no images")
        for image in files:
            mask, why = _mask_of(image, kind, truth, root)
            item = AnomalyItem(str(image), kind, mask, file_identity(image))
            if mask is not None:
                bad = check_mask(item)
                if bad:
                    source.missing.append((str(image), bad))
                    item = AnomalyItem(str(image), kind, None, item.identity)
            elif truth is not None and kind != GOOD:
                source.missing.append((str(image), why))
            items.append(item)
    return items


def discover(data: str | Path, *, strict: bool = False) -> AnomalySource:
    """Every image under ``data`` with its kind; masks that are missing or do not fit their
    image are listed (pixel metrics leave those images out; ``strict`` makes them fatal)."""
    root = Path(data).expanduser()
    if not root.exists():
        raise TlcvError(f"{root} does not exist", path=str(root), hint="check the --data path")
    if not root.is_dir():
        raise TlcvError(f"{root} is a file; anomaly data is a folder", path=str(root))
    truth = root / "ground_truth" if (root / "ground_truth").is_dir() else None
    source = AnomalySource(str(root), [], [], [], masks=truth is not None)
    if (root / "train").is_dir():
        source.train = _good_training(root / "train")
        for split in ("val", "test"):
            if (root / split).is_dir():
                setattr(source, split, _labelled(root / split, truth, root, source))
    elif (root / GOOD).is_dir():
        source.test = _labelled(root, truth, root, source)
    else:
        files = _images(root)
        source.train = [AnomalyItem(str(p), GOOD, None, file_identity(p)) for p in files]
        if not files:
            raise TlcvError(
                f"{root} holds no images",
                path=str(root),
                hint="give train/good/ + test/<kind>/ (MVTec layout) or a folder of good images",
            )
    if source.missing and strict:
        path, reason = source.missing[0]
        raise TlcvError(f"{path}: {reason}", path=path, hint="fix the mask, or drop --strict")
    if source.missing:
        source.notes.append(
            f"{len(source.missing)} defect image(s) have no usable mask (see skipped.csv): "
            "image scores count them, pixel scores leave them out"
        )
    return source


def _good_training(train: Path) -> list[AnomalyItem]:
    """train/good/ (or images directly in train/); any other folder there is refused."""
    others = [p.name for p in _kinds(train) if p.name != GOOD]
    if others:
        raise TlcvError(
            f"{train} holds {', '.join(f'{n}/' for n in others)} beside good/: an anomaly model "
            "learns from defect-free images only",
            path=str(train),
            hint=f"move defect images to test/<kind>/ (e.g. test/{others[0]}/)",
        )
    folder = train / GOOD if (train / GOOD).is_dir() else train
    files = _images(folder)
    if not files:
        raise TlcvError(
            f"{folder} holds no images", path=str(folder), hint="put defect-free images there"
        )
    return [AnomalyItem(str(p), GOOD, None, file_identity(p)) for p in files]
