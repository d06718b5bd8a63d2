"""Training data for the engine: epoch-seeded sampling and augmentation, so a resumed run sees
exactly the batches an uninterrupted one would, whichever worker decodes which image.

Images pass two stages: the deterministic base (decode, short side resized; held in memory
when the split fits, data/memory.py) and the view (centre crop, or a random crop + flip drawn
per image and cut for the whole batch in ``collate_labelled``, engine/augment.py).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.v2 import functional as TF

from ..backbones.registry import Preprocessing
from ..config import AUGMENTS  # declared with the options
from ..data import ImageItem
from ..data.loading import default_workers_for, lower_priority
from ..data.memory import decode_base, preload
from ..errors import BadImageError, TlcvError
from .augment import crop_batch, draw_crop
from .seeding import seed_of, seeded

__all__ = ["EpochSampler", "LabelledImages", "collate_labelled", "labelled_loader", "seeded"]


def check_augment(augment: str) -> None:
    if augment not in AUGMENTS:
        raise TlcvError(f"unknown --augment {augment!r}", hint=f"choose one of {AUGMENTS}")


def loader_workers(n_items: int, held: bool, requested: int | None) -> int:
    """Decoding processes for a loader: as asked; by default none for data held in memory
    (a worker would only copy batches it did not have to decode)."""
    if requested is not None:
        return requested
    return 0 if held else default_workers_for(n_items)


def hold_in_memory(
    items: list[ImageItem], prep: Preprocessing, enabled: bool, num_workers: int | None
) -> bool:
    """Decode ``items`` into the in-memory store when enabled and they fit; True if held."""
    if not enabled or not items:
        return False
    workers = default_workers_for(len(items)) if num_workers is None else num_workers
    return preload(items, prep, workers)


class EpochSampler(Sampler):
    """Yields (index, epoch) pairs: the order is a pure function of (seed, epoch).

    Under DDP each rank takes a disjoint, equally long share (padded by repeating indices,
    like DistributedSampler). Lightning calls ``set_epoch`` before every epoch.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _world(self) -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __iter__(self):
        rank, world = self._world()
        if self.shuffle:
            gen = torch.Generator().manual_seed(seed_of(self.seed, self.epoch) % (2**63))
            order = torch.randperm(self.n, generator=gen).tolist()
        else:
            order = list(range(self.n))
        per_rank = -(-self.n // world)
        order += order[: per_rank * world - self.n]
        return iter((i, self.epoch) for i in order[rank::world])

    def __len__(self) -> int:
        _, world = self._world()
        return -(-self.n // world)


class EpochItems(Dataset):
    """Items read by ``(index, epoch)`` keys (the epoch-seeded samplers' keys; a plain index
    is epoch 0), so every random draw is a function of (seed, epoch, index) and a resumed
    run draws what an uninterrupted one would. Subclasses say how one item ``load``s."""

    items: list

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        return self.load(self.items[index], index, epoch)

    def load(self, item, index: int, epoch: int):
        raise NotImplementedError


class LabelledImages(EpochItems):
    """(index, epoch) -> (uint8 image, class index, error, crop draw).

    ``augment="none"``: the centre crop, draw None. Otherwise the base image and its seeded
    random draw; ``collate_labelled`` cuts the views of a whole batch at once.
    """

    def __init__(
        self,
        items: list[ImageItem],
        classes: list[str],
        prep: Preprocessing,
        augment: str,
        seed: int,
    ):
        check_augment(augment)
        self.items, self.prep, self.augment, self.seed = items, prep, augment, seed
        self.lookup = {c: i for i, c in enumerate(classes)}

    def load(self, item: ImageItem, index: int, epoch: int):
        try:
            base = decode_base(item, self.prep)
        except BadImageError as exc:
            return None, item.path, exc.message, None
        # Unlabelled items (a domain-adaptation target) get -1: their labels are never read.
        label = -1 if item.label is None else self.lookup[item.label]
        size = self.prep.input_size
        if self.augment == "none":
            return TF.center_crop(base, [size, size]), label, None, None
        draw = draw_crop(
            base.shape[-2], base.shape[-1], size, seed_of(self.seed, epoch, index),
            strong=self.augment == "strong",
        )  # fmt: skip
        return base, label, None, draw


def collate_labelled(samples):
    """(images uint8 (B,3,H,W), labels, [(path, error)]) from dataset samples (3-tuples of
    cached features, or LabelledImages' 4-tuples whose draws are cut here as one batch)."""
    good = [s for s in samples if s[2] is None]
    bad = [(s[1], s[2]) for s in samples if s[2] is not None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), bad
    xs = [s[0] for s in good]
    ys = torch.tensor([s[1] for s in good], dtype=torch.long)
    draws = [s[3] if len(s) > 3 else None for s in good]
    if draws[0] is not None:
        return crop_batch(xs, draws), ys, bad
    return torch.stack(xs), ys, bad


def labelled_loader(
    items: list[ImageItem],
    classes: list[str],
    prep: Preprocessing,
    *,
    augment: str,
    batch_size: int,
    seed: int,
    shuffle: bool,
    num_workers: int | None,
    memory: bool = True,
) -> DataLoader:
    """Batches of (uint8 images, labels, skipped). ``memory``: decode once into RAM when the
    split fits; held data needs no worker processes (they would only add copying)."""
    held = hold_in_memory(items, prep, memory, num_workers)
    dataset = LabelledImages(items, classes, prep, augment if shuffle else "none", seed)
    workers = loader_workers(len(items), held, num_workers)
    return DataLoader(
        dataset,
        batch_size=min(batch_size, max(1, len(items))),
        sampler=EpochSampler(len(items), seed, shuffle),
        num_workers=workers,
        collate_fn=collate_labelled,
        persistent_workers=workers > 0,
        worker_init_fn=lower_priority if workers else None,
        drop_last=False,
    )
