"""Batches of decoded images for the network: uint8 from the workers, normalised in batch.

Workers send uint8 tensors (4x less to copy between processes than float); normalisation and
the channels_last layout happen once per batch on the compute device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ..backbones.registry import Preprocessing
from ..errors import BadImageError
from .decode import ImageItem
from .memory import base_transform, decode_base


def eval_transform(prep: Preprocessing) -> v2.Compose:
    """Resize, centre-crop, uint8 tensor: the deterministic path used for features and tests
    (the base stage of data/memory.py, then the crop)."""
    return v2.Compose([base_transform(prep), v2.CenterCrop(prep.input_size)])


class ImageDataset(Dataset):
    """Decodes items (from memory when held); a bad file yields ``None`` plus its reason
    instead of killing the worker."""

    def __init__(self, items: list[ImageItem], prep: Preprocessing):
        self.items, self.prep = items, prep
        self.resize = base_transform(prep)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        size = self.prep.input_size
        try:
            base = decode_base(self.items[index], self.prep, self.resize)
            return index, TF.center_crop(base, [size, size]), None
        except BadImageError as exc:
            return index, None, exc.message


@dataclass
class Batch:
    indices: list[int]
    images: torch.Tensor  # uint8 (B, 3, H, W)
    failures: list[tuple[int, str]]


def collate(samples) -> Batch:
    good = [(i, img) for i, img, err in samples if err is None]
    failures = [(i, err) for i, _, err in samples if err is not None]
    images = (
        torch.stack([img for _, img in good])
        if good
        else torch.empty(0, 3, 1, 1, dtype=torch.uint8)
    )
    return Batch([i for i, _ in good], images, failures)


def default_workers_for(n_items: int) -> int:
    """Worker processes for decoding: none for tiny jobs (start-up costs more than it saves)."""
    if n_items < 64:
        return 0
    return max(1, min(4, (os.cpu_count() or 1) - 1)) if (os.cpu_count() or 1) > 2 else 1


WORKER_NICE_ENV = "TLCV_WORKER_NICE"
# Workers keep normal priority. At nice 19 they gained nothing measurable on an idle 2-core
# machine and starved beside any other busy process (CFS gives nice 19 ~1.5% of a core):
# extraction 5.4x slower, a LeNet DANN epoch > 2x (benchmarks/bench_priority.py).
DEFAULT_WORKER_NICE = 0


def worker_nice() -> int:
    """How much decode workers lower their priority (0-19); ``TLCV_WORKER_NICE`` overrides
    (e.g. 5 on a machine whose other jobs matter more than this one)."""
    raw = os.environ.get(WORKER_NICE_ENV, "").strip()
    try:
        return min(19, max(0, int(raw))) if raw else DEFAULT_WORKER_NICE
    except ValueError:
        return DEFAULT_WORKER_NICE


def lower_priority(_worker_id: int) -> None:
    """Lower a decode worker's priority when TLCV_WORKER_NICE asks for it (default: leave it)."""
    nice = worker_nice()
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass


def image_loader(
    items: list[ImageItem], prep: Preprocessing, batch_size: int, num_workers: int | None = None
) -> DataLoader:
    workers = default_workers_for(len(items)) if num_workers is None else num_workers
    dataset = ImageDataset(items, prep)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        worker_init_fn=lower_priority if workers else None,
    )


def normalize(
    images: torch.Tensor, prep: Preprocessing, device: torch.device, channels_last: bool = True
) -> torch.Tensor:
    """uint8 (B,3,H,W) -> normalised float on ``device``."""
    x = images.to(device, non_blocking=True).float().div_(255.0)
    mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1)
    x = x.sub_(mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
