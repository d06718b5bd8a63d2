"""Small videos made at test time with PyAV: ordered frames, short clips, broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """Encode RGB uint8 frames (H, W, 3) as H.264 MP4."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2] if frames else (32, 32)
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def ramp_video(path: Path, n: int = 12, size: int = 32) -> Path:
    """Frame i is a flat grey of level 10 + 18 * i: decoding order is checkable."""
    return write_video(path, [np.full((size, size, 3), 10 + 18 * i, np.uint8) for i in range(n)])


def audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(16000) / 8) * 0.3).astype(np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        frame.time_base = Fraction(1, 16000)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def zero_frame_video(path: Path) -> Path:
    """A container with a video stream and no frame in it (AVI keeps such a stream)."""
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        out.start_encoding()
    return path


def broken_videos(folder: Path, real: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = real.read_bytes()
    files = {
        "zero": folder / "zero.mp4",
        "garbage": folder / "garbage.mp4",
        "truncated": folder / "truncated.mp4",
        "audio": folder / "audio.mp4",
        "no_frames": folder / "no_frames.avi",
    }
    files["zero"].write_bytes(b"")
    files["garbage"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["truncated"].write_bytes(data[: len(data) // 2])
    audio_only(files["audio"])
    zero_frame_video(files["no_frames"])
    return files
