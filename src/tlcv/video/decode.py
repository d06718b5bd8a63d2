"""Decoding clips: video files with PyAV, or folders of frame images. Every failure names the
file and says what is wrong (BadImageError, so the skip / --strict policy is the same)."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

from PIL import Image

from ..data.decode import IMAGE_SUFFIXES, open_rgb
from ..errors import BadImageError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg"})


def is_clip(path: Path) -> bool:
    """A video file, or a folder holding frame images."""
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def frame_files(folder: Path) -> list[Path]:
    from ..backbones.registry import natural_key

    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def clip_identity(path: Path) -> str:
    """Changes whenever the clip may have changed (a file's size+mtime, a folder's frames)."""
    if path.is_dir():
        digest = hashlib.sha1()
        for f in frame_files(path):
            st = f.stat()
            digest.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
        return f"{path.resolve()}|frames|{digest.hexdigest()[:16]}"
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def read_frames(ref: str, draft_size: int | None = None) -> list[Image.Image]:
    """All frames of a clip, in order, as RGB images."""
    path = Path(ref)
    if path.is_dir():
        frames = [open_rgb(str(f), draft_size) for f in frame_files(path)]
        if not frames:
            raise BadImageError("frame folder holds no images", path=ref)
        return frames
    return _decode_video(path)


def _decode_video(path: Path) -> list[Image.Image]:
    import av
    from av.video.reformatter import VideoReformatter

    ref = str(path)
    if not path.is_file():
        raise BadImageError("file not found", path=ref)
    if path.stat().st_size == 0:
        raise BadImageError("empty file (0 bytes)", path=ref, hint="copy the video again")
    try:
        with av.open(ref) as container:
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                kind = container.format.name.removesuffix("_pipe").replace("image2", "image")
                raise BadImageError(
                    f"not a video: the file is a still {kind} image named {path.suffix}",
                    path=ref,
                    hint="put still images in an image folder, or frame folders "
                    "(CLASS/CLIP/*.jpg) for clips",
                )
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams})
                if not kinds:
                    raise BadImageError(
                        "no video stream (the file holds no streams at all)",
                        path=ref,
                        hint="the recording is empty; record or export it again",
                    )
                raise BadImageError(
                    f"no video stream ({', '.join(kinds)} streams only)",
                    path=ref,
                    hint="an audio-only file is not a clip",
                )
            stream = container.streams.video[0]
            # No FFmpeg threads in a forked process (a DataLoader worker): threads started
            # after fork() can block on a lock another parent thread held at the fork, and
            # one did (CI hung in swscale's slice threads inside a worker). Workers are the
            # parallelism there; the main process decodes with frame threads.
            if multiprocessing.parent_process() is None:
                stream.thread_type = "AUTO"
            else:
                stream.codec_context.thread_count = 1
            rgb = VideoReformatter()  # this call's own: 32 px frames gain nothing from threads
            frames = [
                rgb.reformat(frame, format="rgb24", threads=1).to_image()
                for frame in container.decode(stream)
            ]
    except BadImageError:
        raise
    except av.error.InvalidDataError as exc:
        raise BadImageError(
            f"corrupt or truncated video: {exc}", path=ref, hint="re-encode or re-copy the file"
        ) from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise BadImageError(
            f"cannot decode video: {exc}",
            path=ref,
            hint="re-encode it as H.264 MP4 (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)",
        ) from exc
    if not frames:
        raise BadImageError("video holds zero frames", path=ref)
    return [f if f.mode == "RGB" else f.convert("RGB") for f in frames]
