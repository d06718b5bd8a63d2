"""Decoding one image safely: any mode to RGB, EXIF orientation, JPEG draft mode, bad files.

Every failure becomes a BadImageError that names the file and says what is wrong, so callers
can skip and list it (the default) or stop (--strict).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadImageError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
# Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we refuse above the limit.
MAX_PIXELS = 120_000_000


@dataclass(frozen=True)
class ImageItem:
    """One labelled image: a file, or an entry of an array file (``FILE.npz::split[i]``).

    ``identity`` changes whenever the content may have changed (path, size, mtime), so it keys
    the feature cache.
    """

    path: str
    label: str | None
    identity: str


def file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


@lru_cache(maxsize=8)
def _npz_arrays(path: str, identity: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _array_image(ref: str) -> Image.Image:
    file, _, entry = ref.partition("::")
    array_name, _, index = entry.partition("[")
    arrays = _npz_arrays(file, file_identity(Path(file)))
    pixels = arrays[f"{array_name}_images"][int(index.rstrip("]"))]
    return Image.fromarray(np.ascontiguousarray(pixels))


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / float scans: scale the real range to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F":
            lo, hi = float(arr.min()), float(arr.max())
            arr, peak = (arr - lo), max(hi - lo, 1e-6)
        arr = np.clip(arr * (255.0 / peak), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        # Transparent pixels may hold garbage colours: flatten onto white, like a viewer would.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def header_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header, no pixel decoded and no warning printed for
    large sizes (the caller decides with ``over_pixel_limit``). OSError when unreadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            return img.size


def over_pixel_limit(size: tuple[int, int], what: str = "image") -> str | None:
    """Why an image or mask of ``size`` (width, height: from its header, before any pixel
    is decoded) is refused, or None."""
    width, height = size
    if width * height <= MAX_PIXELS:
        return None
    return (
        f"{what} is {width}x{height} ({width * height / 1e6:.0f} MP), over the "
        f"{MAX_PIXELS / 1e6:.0f} MP safety limit (decompression bomb guard)"
    )


def open_rgb(ref: str, draft_size: int | None = None) -> Image.Image:
    """Decode ``ref`` to an RGB image; ``draft_size`` lets JPEGs decode at a reduced scale."""
    if "::" in ref and not Path(ref).exists():
        try:
            return _to_rgb(_array_image(ref))
        except (OSError, KeyError, IndexError, ValueError) as exc:
            raise BadImageError(f"cannot read array image {ref}: {exc}", path=ref) from exc
    path = Path(ref)
    try:
        if path.stat().st_size == 0:
            raise BadImageError(
                "empty file (0 bytes)", path=ref, hint="remove it or copy the image again"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        too_big = over_pixel_limit(img.size)
        if too_big:
            hint = "downscale it first if it is a genuine photo"
            raise BadImageError(too_big, path=ref, hint=hint)
        if draft_size and img.format == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale while staying >= the size we resize to.
            img.draft("RGB", (draft_size, draft_size))
        img = ImageOps.exif_transpose(img)
        img.load()
        return _to_rgb(img)
    except BadImageError:
        raise
    except FileNotFoundError as exc:
        raise BadImageError(
            "file not found", path=ref, hint="the file was moved or deleted since the list was made"
        ) from exc
    except UnidentifiedImageError as exc:
        raise BadImageError(
            "not an image (unknown or corrupt format)",
            path=ref,
            hint="remove it or replace it with a valid image file",
        ) from exc
    except Image.DecompressionBombError as exc:
        raise BadImageError(
            f"refused as a decompression bomb: {exc}",
            path=ref,
            hint="downscale it first if it is a genuine photo",
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(
            f"corrupt or truncated image: {exc}", path=ref, hint="re-export or re-copy the file"
        ) from exc
