"""Unlabelled inputs for predict: files as given, and what folders hold, in a stable order."""

from __future__ import annotations

from pathlib import Path

from ..data.decode import IMAGE_SUFFIXES, ImageItem, file_identity
from ..errors import TlcvError


def unique_stem(path: str, used: set[str]) -> str:
    """The file's stem, numbered when another input had it (a/x.jpg, b/x.jpg -> x, x-2), so
    the files predict writes per input never overwrite each other; ``used`` remembers."""
    stem, n = Path(path).stem, 1
    while stem in used:
        n += 1
        stem = f"{Path(path).stem}-{n}"
    used.add(stem)
    return stem


def collect_images(paths: list[str | Path]) -> list[ImageItem]:
    """Files as given, and images found recursively in folders."""
    items = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            items.extend(ImageItem(str(p), None, file_identity(p)) for p in files)
        elif path.is_file():
            items.append(ImageItem(str(path), None, file_identity(path)))
        else:
            raise TlcvError(f"no such file or folder: {path}", path=str(path))
    return items


def collect_clips(paths: list[str | Path]) -> list[ImageItem]:
    """Video files and frame folders as given, and clips found inside other folders."""
    from ..video import VIDEO_SUFFIXES, clip_identity, is_clip

    items = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise TlcvError(f"no such file or folder: {path}", path=str(path))
        if is_clip(path):
            found = [path]
        elif path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
        else:
            raise TlcvError(
                f"{path} is not a video file",
                path=str(path),
                hint=f"video types: {', '.join(sorted(VIDEO_SUFFIXES))}",
            )
        items.extend(ImageItem(str(p), None, clip_identity(p)) for p in found)
    return items
