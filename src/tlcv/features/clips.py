"""Per-frame features of clips, through the same cache as images (one row per frame).

A clip's frames are always flushed together in one atomic shard, so a cached clip is complete:
its frame count is the run of consecutive keys ``identity#0, #1, ...`` present in the index.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..backbones import Backbone
from ..data import ImageItem, eval_transform
from ..data.loading import default_workers_for, lower_priority
from ..distributed import DistInfo, init_from_env
from ..errors import BadImageError
from ..video.decode import read_frames
from .cache import FeatureCache, item_key
from .extract import Chunk, cache_for, fill_cache, resolve_device


@dataclass
class ClipFeatures:
    sequences: list[np.ndarray]  # (frames, D) per readable clip, in input order
    items: list[ImageItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frames_computed: int = 0
    clips_cached: int = 0
    seconds: float = 0.0


def clip_notes(features: ClipFeatures, frames: int) -> list[str]:
    """What a clip run notes about its clips: short ones, unreadable ones."""
    notes = []
    short = sum(len(s) < frames for s in features.sequences)
    if short:
        notes.append(
            f"{short} clip(s) have fewer than --frames {frames} frames: they are used whole, "
            "as shorter packed sequences (nothing is padded into the RNN)"
        )
    if features.skipped:
        notes.append(f"{len(features.skipped)} unreadable clip(s) skipped; see skipped.csv")
    return notes


def frame_key(identity: str, index: int) -> str:
    return item_key(f"{identity}#frame{index}")


class ClipDataset(Dataset):
    def __init__(self, items: list[ImageItem], transform, draft_size: int | None):
        self.items, self.transform, self.draft_size = items, transform, draft_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        try:
            frames = read_frames(self.items[index].path, self.draft_size)
            return index, torch.stack([self.transform(f) for f in frames]), None
        except BadImageError as exc:
            return index, None, exc.message


def cached_frame_count(cache: FeatureCache, identity: str) -> int:
    index, n = cache.index(), 0
    while frame_key(identity, n) in index:
        n += 1
    return n


def _clip_chunks(todo: list[ImageItem], backbone, batch_size: int, num_workers: int | None):
    """One Chunk per clip (all its frames), decoded by worker processes a few clips ahead."""
    workers = default_workers_for(len(todo)) if num_workers is None else num_workers
    loader = DataLoader(
        ClipDataset(
            todo, eval_transform(backbone.preprocessing), backbone.preprocessing.resize_size
        ),
        batch_size=max(1, batch_size // 16),
        num_workers=workers,
        collate_fn=list,
        worker_init_fn=lower_priority if workers else None,
        prefetch_factor=4 if workers else None,
    )
    for batch in loader:
        for index, frames, error in batch:
            item = todo[index]
            if error is not None:
                yield Chunk([], None, [(item.path, error)], 1)
            else:
                keys = [frame_key(item.identity, i) for i in range(len(frames))]
                yield Chunk(keys, frames, [], 1)


def extract_clip_features(
    items: list[ImageItem],
    backbone: Backbone,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "auto",
    strict: bool = False,
    progress: bool = False,
    dist_info: DistInfo | None = None,
) -> ClipFeatures:
    """Features of every frame of every clip; decoded once, cached, then served from disk."""
    started = time.perf_counter()
    dev = resolve_device(device)
    info = dist_info or init_from_env()
    cache = cache_for(backbone, cache_dir, dev)
    todo = [it for it in items if frame_key(it.identity, 0) not in cache.index()]
    todo = list({it.identity: it for it in todo}.values())
    frames_before = len(cache.index())
    skipped = fill_cache(
        todo,
        lambda mine: _clip_chunks(mine, backbone, batch_size, num_workers),
        backbone,
        cache,
        dev,
        info,
        batch_size=batch_size,
        strict=strict,
        shard_rows=2048,  # a clip's frames are flushed together: a cached clip is complete
        label=f"frames {backbone.name}",
        unit="clips",
        progress=progress,
        hint="fix or remove the clip, or run without --strict",
    )
    frames_done = len(cache.index()) - frames_before
    counts = [cached_frame_count(cache, item.identity) for item in items]
    ok = [item for item, n in zip(items, counts, strict=True) if n]
    keys = [
        frame_key(item.identity, i) for item, n in zip(items, counts, strict=True) for i in range(n)
    ]
    flat = cache.read(keys) if keys else np.empty((0, backbone.feature_dim), np.float32)
    bounds = np.cumsum([0] + [n for n in counts if n])
    sequences = [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return ClipFeatures(
        sequences,
        ok,
        skipped,
        frames_computed=frames_done,
        clips_cached=len(items) - len(todo),
        seconds=time.perf_counter() - started,
    )
