"""Labelled clips: CLASS/*.mp4 (or CLASS/CLIP/*.jpg frame folders), optional split folders."""

from __future__ import annotations

from pathlib import Path

from ..data.decode import ImageItem
from ..data.sources import SPLIT_NAMES, Source
from ..errors import TlcvError
from .decode import VIDEO_SUFFIXES, clip_identity, is_clip


def _scan(root: Path, notes: list[str], strict: bool) -> tuple[list[ImageItem], list[str]]:
    items, classes = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        clips = sorted(p for p in class_dir.iterdir() if not p.name.startswith(".") and is_clip(p))
        if not clips:
            message = f"class folder {class_dir} holds no clips"
            if strict:
                raise TlcvError(message, path=str(class_dir), hint="add clips or remove it")
            notes.append(f"{message}; the class is left out")
            continue
        classes.append(class_dir.name)
        items.extend(ImageItem(str(c), class_dir.name, clip_identity(c)) for c in clips)
    return items, classes


def discover_clips(data: str | Path, *, strict: bool = False) -> Source:
    """Find labelled clips under ``data`` (same layout rules as image folders)."""
    root = Path(data).expanduser()
    if not root.is_dir():
        raise TlcvError(
            f"video data folder does not exist: {root}",
            path=str(root),
            hint="expected CLASS/clip.mp4 (or CLASS/CLIP/frame.jpg) sub-folders",
        )
    notes: list[str] = []
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    split_dirs = {SPLIT_NAMES[k]: v for k, v in subdirs.items() if k in SPLIT_NAMES}
    if split_dirs and len(split_dirs) == len(subdirs):
        splits, all_classes = {}, set()
        for split, path in split_dirs.items():
            splits[split], found = _scan(path, notes, strict)
            all_classes.update(found)
        classes = sorted(all_classes)
    else:
        items, classes = _scan(root, notes, strict)
        splits = {"all": items}
    if not any(splits.values()):
        raise TlcvError(
            f"no clips found under {root}",
            path=str(root),
            hint=f"video types: {', '.join(sorted(VIDEO_SUFFIXES))}, or folders of frame images",
        )
    return Source(str(root), splits, classes, notes)


def is_video_data(data: str | Path) -> bool:
    """True when ``data`` holds clips rather than still images (looks at the first few)."""
    root = Path(data).expanduser()
    if not root.is_dir():
        return False
    for depth_glob in ("*/*", "*/*/*"):
        for path in root.glob(depth_glob):
            if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
                return True
    return False
