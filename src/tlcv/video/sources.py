"""Labelled clips: CLASS/*.mp4 (or CLASS/CLIP/*.jpg frame folders), optional split folders,
found by the one class-folder scanner (data.sources.scan_folder)."""

from __future__ import annotations

from pathlib import Path

from ..data.sources import Members, Source, scan_folder
from ..errors import TlcvError
from .decode import VIDEO_SUFFIXES, clip_identity, is_clip


def _clips_in(class_dir: Path, entries: list[Path]) -> list[Path]:
    return sorted(p for p in class_dir.iterdir() if not p.name.startswith(".") and is_clip(p))


CLIPS = Members("clips", _clips_in, clip_identity)


def discover_clips(data: str | Path, *, strict: bool = False) -> Source:
    """Find labelled clips under ``data`` (same layout rules as image folders)."""
    root = Path(data).expanduser()
    if not root.is_dir():
        raise TlcvError(
            f"video data folder does not exist: {root}",
            path=str(root),
            hint="expected CLASS/clip.mp4 (or CLASS/CLIP/frame.jpg) sub-folders",
        )
    source = scan_folder(root, strict, CLIPS)
    if not source.all_items():
        raise TlcvError(
            f"no clips found under {root}",
            path=str(root),
            hint=f"video types: {', '.join(sorted(VIDEO_SUFFIXES))}, or folders of frame images",
        )
    return source


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
