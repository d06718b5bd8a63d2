"""Image + box batches: box-aware augmentation with torchvision transforms v2
(``tv_tensors.BoundingBoxes`` move with their image), seeded per image and epoch like every
other task (engine.data.seeded), resized once here so the detector's own resize is a no-op."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..data import open_rgb
from ..data.loading import default_workers_for, lower_priority
from ..engine.data import EpochSampler, seeded
from ..errors import BadImageError
from .data import DetItem


def transform(size: int, augment: str | None) -> v2.Compose:
    """Short side to ``size``; training adds photometric jitter ("light") and, with "strong",
    horizontal flips (mind signs whose meaning flips, e.g. turn arrows)."""
    steps: list = [v2.Resize(size, antialias=True)]
    if augment in ("light", "strong"):
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    if augment == "strong":
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.SanitizeBoundingBoxes(min_size=1))
    return v2.Compose(steps)


class DetectionImages(Dataset):
    """(index, epoch) -> (uint8 image, target dict with boxes and labels 1..K)."""

    def __init__(self, items: list[DetItem], classes: list[str], tf, seed: int):
        self.items, self.tf, self.seed = items, tf, seed
        self.lookup = {c: i + 1 for i, c in enumerate(classes)}  # 0 is the background

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.items[index]
        try:
            image = torch.from_numpy(np.array(open_rgb(item.path))).permute(2, 0, 1)
        except BadImageError as exc:
            return None, None, item.path, exc.message
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor(item.boxes, dtype=torch.float32).reshape(-1, 4),
            format="XYXY",
            canvas_size=tuple(image.shape[-2:]),
        )
        labels = torch.tensor([self.lookup[n] for n in item.labels], dtype=torch.int64)
        with seeded(self.seed, epoch, index):
            image, target = self.tf(tv_tensors.Image(image), {"boxes": boxes, "labels": labels})
        target["boxes"] = target["boxes"].as_subclass(torch.Tensor)
        return image.as_subclass(torch.Tensor), target, None, None


def collate(samples):
    good = [(x, t) for x, t, _, err in samples if err is None]
    bad = [(path, err) for _, _, path, err in samples if err is not None]
    return [g[0] for g in good], [g[1] for g in good], bad


def detection_loader(
    items: list[DetItem],
    classes: list[str],
    size: int,
    *,
    augment: str | None,
    batch_size: int,
    seed: int,
    num_workers: int | None,
) -> DataLoader:
    """Training batches when ``augment`` is given (shuffled), else in order."""
    workers = default_workers_for(len(items)) if num_workers is None else num_workers
    return DataLoader(
        DetectionImages(items, classes, transform(size, augment), seed),
        batch_size=min(batch_size, max(1, len(items))),
        sampler=EpochSampler(len(items), seed, shuffle=augment is not None),
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
        worker_init_fn=lower_priority if workers else None,
    )
