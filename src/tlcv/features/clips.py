"""Per-frame features of clips, through the same cache as images (one row per frame).

A clip's frames are always flushed together in one atomic shard, so a cached clip is complete:
its frame count is the run of consecutive keys ``identity#0, #1, ...`` present in the index.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..backbones import Backbone
from ..data import ImageItem, eval_transform, normalize
from ..data.loading import default_workers_for, lower_priority
from ..distributed import DistInfo, barrier, gather_objects, init_from_env
from ..errors import BadImageError
from ..video.decode import read_frames
from .cache import FeatureCache, item_key
from .extract import _progress, cache_for, prepare_for_inference, resolve_device


@dataclass
class ClipFeatures:
    sequences: list[np.ndarray]  # (frames, D) per readable clip, in input order
    items: list[ImageItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frames_computed: int = 0
    clips_cached: int = 0
    seconds: float = 0.0


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


def _collate(samples):
    return samples


def cached_frame_count(cache: FeatureCache, identity: str) -> int:
    index, n = cache.index(), 0
    while frame_key(identity, n) in index:
        n += 1
    return n


@torch.inference_mode()
def _compute(todo, backbone, cache, device, *, batch_size, num_workers, strict, progress):
    model = backbone  # prepared by the caller, outside inference mode
    autocast = (
        torch.autocast("cuda", dtype=torch.float16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    workers = default_workers_for(len(todo)) if num_workers is None else num_workers
    loader = DataLoader(
        ClipDataset(
            todo, eval_transform(backbone.preprocessing), backbone.preprocessing.resize_size
        ),
        batch_size=max(1, batch_size // 16),
        num_workers=workers,
        collate_fn=_collate,
        worker_init_fn=lower_priority if workers else None,
        prefetch_factor=4 if workers else None,
    )
    skipped, frames_done = [], 0
    keys, rows = [], []
    with _progress(progress) as bar:
        task = bar.add_task(f"frames {backbone.name}", total=len(todo), rate="")
        for batch in loader:
            for index, frames, error in batch:
                if error is not None:
                    if strict:
                        raise BadImageError(
                            error,
                            path=todo[index].path,
                            hint="fix or remove the clip, or run without --strict",
                        )
                    skipped.append((todo[index].path, error))
                    continue
                for start in range(0, len(frames), batch_size):
                    x = normalize(
                        frames[start : start + batch_size],
                        backbone.preprocessing,
                        device,
                        channels_last=True,
                    )
                    with autocast:
                        rows.append(model(x).float().cpu())
                keys.extend(frame_key(todo[index].identity, i) for i in range(len(frames)))
                frames_done += len(frames)
            if len(keys) >= 2048:  # flush at a clip boundary only
                cache.write(list(keys), torch.cat(rows))
                keys.clear()
                rows.clear()
            bar.update(task, advance=len(batch))
    if keys:
        cache.write(keys, torch.cat(rows))
    return skipped, frames_done


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
    mine = todo[info.rank :: info.world_size]
    if mine:
        prepare_for_inference(backbone, dev)
    skipped, frames_done = (
        _compute(
            mine,
            backbone,
            cache,
            dev,
            batch_size=batch_size,
            num_workers=num_workers,
            strict=strict,
            progress=progress and info.is_main,
        )
        if mine
        else ([], 0)
    )
    skipped = [s for part in gather_objects(skipped, info) for s in part]
    frames_done = sum(gather_objects(frames_done, info))
    barrier(info)
    if info.is_main:
        cache.compact()
    barrier(info)
    cache.index(refresh=True)
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
