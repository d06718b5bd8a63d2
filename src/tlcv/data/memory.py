"""Decoded images kept in memory, so later epochs, later grid cells and the final evaluation
never decode a file again.

Small images (digits, MedMNIST, CIFAR) cost more to decode and resize than to train on: a
LeNet DANN epoch spent more time in PNG decoding and PIL resizing than in the network. Each
image is decoded once into its *base* form (short side resized to the preprocessing's
``resize_size``, uint8 CHW): every later view (centre crop, random crop) is cut from it, so
results are the same whether the cache holds an image or not.

The store is process-wide and bounded (``TLCV_MEMORY_CACHE_MB``, default a quarter of the
machine's RAM); a split that does not fit is not cached at all (decoded per epoch as before).
A file that failed to decode is remembered with its reason, so it is skipped again without a
second attempt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, v2

from ..backbones.registry import Preprocessing
from ..errors import BadImageError
from .decode import ImageItem, open_rgb

LIMIT_ENV = "TLCV_MEMORY_CACHE_MB"
Key = tuple[str, int, str]


def default_limit_bytes() -> int:
    """``TLCV_MEMORY_CACHE_MB`` if set, else a quarter of physical memory, shared among the
    processes torchrun starts on this machine (each holds its own copy)."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if raw:
        try:
            return max(0, int(float(raw) * 2**20))
        except ValueError:
            pass
    local_processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 4 * 2**30
    return total // 4 // local_processes


class DecodedImages:
    """key -> base uint8 tensor, or the reason the file could not be decoded."""

    def __init__(self, limit_bytes: int | None = None):
        self.limit = default_limit_bytes() if limit_bytes is None else limit_bytes
        self.bytes = 0
        self._store: dict[Key, torch.Tensor | str] = {}

    def get(self, key: Key) -> torch.Tensor | str | None:
        return self._store.get(key)

    def has_all(self, keys: Iterable[Key]) -> bool:
        return all(k in self._store for k in keys)

    def fits(self, n_bytes: int) -> bool:
        return self.bytes + n_bytes <= self.limit

    def put(self, key: Key, value: torch.Tensor | str) -> None:
        if key in self._store:
            return
        if isinstance(value, torch.Tensor):
            self.bytes += value.numel() * value.element_size()
        self._store[key] = value

    def clear(self) -> None:
        self._store.clear()
        self.bytes = 0


DECODED = DecodedImages()


def memory_key(item: ImageItem, prep: Preprocessing) -> Key:
    return (item.identity, prep.resize_size, prep.interpolation)


def base_transform(prep: Preprocessing) -> v2.Compose:
    """The deterministic first stage: short side to ``resize_size``, uint8 CHW tensor."""
    return v2.Compose(
        [
            v2.Resize(
                prep.resize_size,
                interpolation=InterpolationMode(prep.interpolation),
                antialias=True,
            ),
            v2.PILToTensor(),
        ]
    )


def decode_base(item: ImageItem, prep: Preprocessing, resize=None) -> torch.Tensor:
    """The base tensor of ``item``: from memory when held, else decoded (BadImageError)."""
    held = DECODED.get(memory_key(item, prep))
    if isinstance(held, str):
        raise BadImageError(held, path=item.path)
    if held is not None:
        return held
    image = open_rgb(item.path, prep.resize_size)
    return (resize or base_transform(prep))(image)


class _BaseImages(Dataset):
    def __init__(self, items: list[ImageItem], prep: Preprocessing):
        self.items, self.prep, self.resize = items, prep, base_transform(prep)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        # numpy, not a tensor: a worker passes a tensor back through a shared-memory file
        # handle per image (a socket round trip each), 0.7 ms per 28x28 digit
        try:
            return index, decode_base(self.items[index], self.prep, self.resize).numpy()
        except BadImageError as exc:
            return index, exc.message


def _estimate_bytes(items: list[ImageItem], prep: Preprocessing) -> int:
    """Bytes the whole list needs, from the first few images that decode."""
    sizes = []
    for item in items[:8]:
        try:
            sizes.append(decode_base(item, prep).numel())
        except BadImageError:
            continue
    return int(len(items) * (sum(sizes) / len(sizes))) if sizes else 0


def preload(items: list[ImageItem], prep: Preprocessing, num_workers: int = 0) -> bool:
    """Decode every item into the store if the whole list fits; True when all are held.

    All or nothing: a partly cached split would still decode every epoch and hold memory for
    little gain.
    """
    keys = [memory_key(it, prep) for it in items]
    missing = [(it, k) for it, k in zip(items, keys, strict=True) if DECODED.get(k) is None]
    if not missing:
        return True
    if not DECODED.fits(_estimate_bytes([it for it, _ in missing], prep)):
        return False
    loader = DataLoader(
        _BaseImages([it for it, _ in missing], prep),
        batch_size=64,
        num_workers=num_workers,
        collate_fn=list,
    )
    for batch in loader:
        for index, value in batch:
            DECODED.put(
                missing[index][1], value if isinstance(value, str) else torch.from_numpy(value)
            )
    return True
