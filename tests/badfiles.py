"""Generators of the bad files users really have."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (a decompression-bomb probe)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def make_bad_files(folder: Path, good_jpeg: Path) -> dict[str, Path]:
    """Unreadable files (to be skipped) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good_jpeg.read_bytes()
    files = {
        "truncated": folder / "truncated.jpg",
        "zero": folder / "zero.jpg",
        "text": folder / "notes.jpg",
        "bomb": folder / "bomb.png",
    }
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["zero"].write_bytes(b"")
    files["text"].write_text("this is not an image\n")
    png_header_only(files["bomb"], 20000, 20000)
    return files


def make_odd_but_valid(folder: Path, good_jpeg: Path) -> dict[str, Path]:
    """Readable images in awkward modes: CMYK, 16-bit grey, palette, RGBA, grey."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.open(good_jpeg).convert("RGB")
    out = {}
    out["cmyk"] = folder / "cmyk.jpg"
    rgb.convert("CMYK").save(out["cmyk"])
    grey16 = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
    out["grey16"] = folder / "grey16.png"
    Image.fromarray(grey16).save(out["grey16"])
    out["palette"] = folder / "palette.png"
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(out["palette"])
    out["rgba"] = folder / "rgba.png"
    rgba = rgb.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(out["rgba"])
    out["grey"] = folder / "grey.png"
    rgb.convert("L").save(out["grey"])
    return out
