"""Training data for the engine: epoch-seeded sampling and augmentation, so a resumed run sees
exactly the batches an uninterrupted one would, whichever worker decodes which image."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import InterpolationMode, v2

from ..backbones.registry import Preprocessing
from ..config import AUGMENTS  # declared with the options
from ..data import ImageItem, eval_transform, open_rgb
from ..data.loading import default_workers_for, lower_priority
from ..errors import BadImageError, TlcvError


def train_transform(prep: Preprocessing, augment: str) -> v2.Compose:
    """Augmentation presets built from the backbone's own preprocessing (uint8 out)."""
    if augment == "none":
        return eval_transform(prep)
    interp = InterpolationMode(prep.interpolation)
    steps = [
        v2.RandomResizedCrop(
            prep.input_size, scale=(0.35, 1.0), interpolation=interp, antialias=True
        ),
        v2.RandomHorizontalFlip(),
    ]
    if augment == "strong":
        steps.append(v2.TrivialAugmentWide(interpolation=interp))
    elif augment != "light":
        raise TlcvError(f"unknown --augment {augment!r}", hint=f"choose one of {AUGMENTS}")
    return v2.Compose([*steps, v2.PILToTensor()])


def _seed_of(*parts: int) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


@contextmanager
def seeded(*parts: int):
    """Random draws inside depend only on ``parts`` (seed, epoch, index): augmentation is the
    same whichever worker decodes the image and whether the run was resumed."""
    with torch.random.fork_rng(devices=[]):
        # CPU generator only: torch.manual_seed also queues a CUDA reseed that records a
        # stack trace, 1 ms per image on CUDA builds of torch.
        torch.default_generator.manual_seed(_seed_of(*parts) % (2**63))
        yield


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
            gen = torch.Generator().manual_seed(_seed_of(self.seed, self.epoch) % (2**63))
            order = torch.randperm(self.n, generator=gen).tolist()
        else:
            order = list(range(self.n))
        per_rank = -(-self.n // world)
        order += order[: per_rank * world - self.n]
        return iter((i, self.epoch) for i in order[rank::world])

    def __len__(self) -> int:
        _, world = self._world()
        return -(-self.n // world)


class LabelledImages(Dataset):
    """(index, epoch) -> (uint8 image, class index); augmentation seeded per image and epoch."""

    def __init__(
        self,
        items: list[ImageItem],
        classes: list[str],
        transform,
        seed: int,
        draft_size: int | None,
    ):
        self.items, self.transform, self.seed, self.draft_size = items, transform, seed, draft_size
        self.lookup = {c: i for i, c in enumerate(classes)}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.items[index]
        try:
            image = open_rgb(item.path, self.draft_size)
        except BadImageError as exc:
            return None, item.path, exc.message
        with seeded(self.seed, epoch, index):
            pixels = self.transform(image)
        # Unlabelled items (a domain-adaptation target) get -1: their labels are never read.
        return pixels, -1 if item.label is None else self.lookup[item.label], None


def collate_labelled(samples):
    good = [(x, y) for x, y, err in samples if err is None]
    bad = [(path, err) for _, path, err in samples if err is not None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.long), bad
    xs, ys = zip(*good, strict=True)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.long), bad


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
) -> DataLoader:
    tf = train_transform(prep, augment) if shuffle else eval_transform(prep)
    dataset = LabelledImages(items, classes, tf, seed, draft_size=prep.resize_size)
    workers = default_workers_for(len(items)) if num_workers is None else num_workers
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
