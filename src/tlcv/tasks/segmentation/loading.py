"""Image/mask batches: joint augmentation with torchvision transforms v2 (``tv_tensors.Mask``
moves with its image; colour changes touch the image only), seeded per image and epoch like
classification (engine/data.py), so a resumed run sees the same batches."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from ...data import open_rgb
from ...data.loading import default_workers_for, lower_priority
from ...engine.data import EpochItems, EpochSampler, seeded
from ...errors import BadImageError
from .data import IGNORE, MaskFormat, SegItem

MULTIPLE = 32  # encoders halve the resolution five times


def train_transform(size: int, augment: str, flips: str = "h") -> v2.Compose:
    """Scale jitter (short side 0.75-1.5 x ``size``), a ``size`` square crop, mirror flips
    (``flips="hv"``: also upside down and quarter turns, for pictures with no up), colour."""
    steps: list = [
        v2.RandomResize(int(size * 0.75), int(size * 1.5) + 1, antialias=True),
        v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Mask: IGNORE, "others": 0}),
        v2.RandomHorizontalFlip(),
    ]
    if flips == "hv":  # the square crop makes a quarter turn shape-preserving
        steps += [v2.RandomVerticalFlip(), v2.RandomChoice([v2.Identity(), QuarterTurn()])]
    if augment == "strong":
        steps.append(v2.ColorJitter(0.4, 0.4, 0.4, 0.05))
    elif augment == "light":
        steps.append(v2.ColorJitter(0.2, 0.2, 0.2))
    return v2.Compose(steps)


class QuarterTurn(v2.Transform):
    """Rotate image and mask by 90 degrees (exact: no interpolation, no fill)."""

    def transform(self, inpt, params):
        return torch.rot90(inpt, 1, (-2, -1)).as_subclass(type(inpt))


def eval_transform(size: int) -> v2.Compose:
    """The whole image, short side resized to ``size`` (the scale the model was trained at)."""
    return v2.Compose([v2.Resize(size, antialias=True)])


class SegmentationPairs(EpochItems):
    """(index, epoch) -> (uint8 image, class-index mask); unreadable pairs come back as errors.
    Items without a mask (unlabelled) get an all-void one: nothing of theirs is a label."""

    def __init__(self, items: list[SegItem], fmt: MaskFormat, transform, seed: int):
        self.items, self.fmt, self.transform, self.seed = items, fmt, transform, seed

    def load(self, item: SegItem, index: int, epoch: int):
        try:
            image = torch.from_numpy(np.array(open_rgb(item.path))).permute(2, 0, 1)
            if item.mask is None:  # an unlabelled image (an adaptation target): all void
                mask = torch.full(image.shape[-2:], IGNORE, dtype=torch.uint8)
            else:
                mask = torch.from_numpy(self.fmt.decode(item.mask))
        except BadImageError as exc:
            return None, None, item.path, exc.message
        except (OSError, ValueError) as exc:
            return None, None, item.path, str(exc).splitlines()[0][:200]
        if tuple(mask.shape) != tuple(image.shape[-2:]):
            return None, None, item.path, "image and mask sizes differ"
        with seeded(self.seed, epoch, index):
            image, mask = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor), None, None


def pad_batch(images: list[torch.Tensor], masks: list[torch.Tensor] | None):
    """Stack images of different sizes: pad right/bottom to a multiple of MULTIPLE (masks with
    IGNORE, so padding never counts)."""
    h = max(im.shape[-2] for im in images)
    w = max(im.shape[-1] for im in images)
    h, w = -(-h // MULTIPLE) * MULTIPLE, -(-w // MULTIPLE) * MULTIPLE

    def pad(t, value):
        return F.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2]), value=value)

    x = torch.stack([pad(im, 0) for im in images])
    y = None if masks is None else torch.stack([pad(m.long(), IGNORE) for m in masks])
    return x, y


def collate_pairs(samples):
    good = [(x, y) for x, y, _, err in samples if err is None]
    bad = [(path, err) for _, _, path, err in samples if err is not None]
    if not good:
        return torch.empty(0, 3, 1, 1, dtype=torch.uint8), torch.empty(0, 1, 1).long(), bad
    x, y = pad_batch([g[0] for g in good], [g[1] for g in good])
    return x, y, bad


def pair_loader(
    items: list[SegItem],
    fmt: MaskFormat,
    size: int,
    *,
    augment: str | None,
    batch_size: int,
    seed: int,
    num_workers: int | None,
    flips: str = "h",
) -> DataLoader:
    """Training batches when ``augment`` is given (shuffled), else whole images in order."""
    training = augment is not None
    tf = train_transform(size, augment, flips) if training else eval_transform(size)
    workers = default_workers_for(len(items)) if num_workers is None else num_workers
    return DataLoader(
        SegmentationPairs(items, fmt, tf, seed),
        batch_size=min(batch_size, max(1, len(items))),
        sampler=EpochSampler(len(items), seed, shuffle=training),
        num_workers=workers,
        collate_fn=collate_pairs,
        persistent_workers=workers > 0,
        worker_init_fn=lower_priority if workers else None,
    )
