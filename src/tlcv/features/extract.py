"""Extract backbone features for a list of images, through the cache, on one or many ranks."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..backbones import Backbone
from ..data import ImageItem, image_loader, normalize
from ..distributed import DistInfo, barrier, gather_objects, init_from_env
from ..errors import BadImageError
from .cache import FeatureCache, FeatureSet, MemoryCache, default_cache_dir, item_key

if TYPE_CHECKING:
    from ..deploy.engine import OnnxEncoder


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def cache_for(
    backbone: Backbone | OnnxEncoder, cache_dir: str | Path | None | bool, device: torch.device
) -> FeatureCache | MemoryCache:
    """The on-disk cache of this backbone's namespace; ``cache_dir=False``: memory only."""
    namespace = {
        "backbone": backbone.name,
        "weights": backbone.weights_id,
        "preprocessing": backbone.preprocessing.to_dict(),
        "precision": "amp" if device.type == "cuda" else "fp32",
    }
    if _engine(backbone) != "torch":  # ONNX Runtime features live in their own namespace
        namespace.update(engine=_engine(backbone), precision="fp32")
    if cache_dir is False:
        return MemoryCache(namespace)
    return FeatureCache(cache_dir or default_cache_dir(), namespace)


def _engine(backbone) -> str:
    """ "torch" for a Backbone, "onnxruntime" for a deploy.engine.OnnxEncoder."""
    return getattr(backbone, "engine", "torch")


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


@torch.inference_mode()
def _compute(
    todo: list[ImageItem],
    backbone: Backbone,
    cache: FeatureCache,
    device: torch.device,
    *,
    batch_size: int,
    num_workers: int | None,
    strict: bool,
    shard_rows: int,
    show_progress: bool,
) -> list[tuple[str, str]]:
    """Run the network over ``todo`` and store the features in shards; return skipped files."""
    channels_last = True
    model = backbone
    autocast = (
        torch.autocast("cuda", dtype=torch.float16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    keys, rows, skipped = [], [], []

    def flush() -> None:
        if keys:
            cache.write(list(keys), torch.cat(rows))
            keys.clear()
            rows.clear()

    loader = image_loader(todo, backbone.preprocessing, batch_size, num_workers)
    try:
        with _progress(show_progress) as bar:
            task = bar.add_task(f"extract {backbone.name}", total=len(todo), rate="")
            for batch in loader:
                for index, reason in batch.failures:
                    if strict:
                        raise BadImageError(
                            reason,
                            path=todo[index].path,
                            hint="fix or remove the file, or run without --strict "
                            "to skip unreadable images",
                        )
                    skipped.append((todo[index].path, reason))
                if batch.indices and _engine(backbone) == "onnxruntime":
                    feats = torch.from_numpy(backbone.features(batch.images.numpy()))
                    keys.extend(item_key(todo[i].identity) for i in batch.indices)
                    rows.append(feats)
                elif batch.indices:
                    x = normalize(batch.images, backbone.preprocessing, device, channels_last)
                    with autocast:
                        feats = model(x).float().cpu()
                    keys.extend(item_key(todo[i].identity) for i in batch.indices)
                    rows.append(feats)
                if len(keys) >= shard_rows:
                    flush()
                done = bar.tasks[task].completed + len(batch.indices) + len(batch.failures)
                speed = bar.tasks[task].speed
                bar.update(task, completed=done, rate=f"{speed:.0f} img/s" if speed else "")
    finally:
        flush()  # whatever was computed survives an error or Ctrl-C
    return skipped


def prepare_for_inference(backbone: Backbone, device: torch.device) -> Backbone:
    """Device, eval mode and channels_last (1.3-2x faster on CPU for every family measured,
    docs/benchmarks.md). Done outside inference mode: parameters converted inside it would
    become inference tensors that can never be trained again."""
    return backbone.to(device).eval().to(memory_format=torch.channels_last)


def extract_features(
    items: list[ImageItem],
    backbone: Backbone,
    *,
    cache_dir: str | Path | None | bool = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "auto",
    strict: bool = False,
    shard_rows: int = 512,
    progress: bool = False,
    dist_info: DistInfo | None = None,
) -> FeatureSet:
    """Features for ``items``; cached ones are read, the rest computed (sharded over ranks).

    ``cache_dir``: a folder, None for the default one, False to keep features in memory only.
    """
    started = time.perf_counter()
    dev = resolve_device(device)
    info = dist_info or init_from_env()
    cache = cache_for(backbone, cache_dir, dev)
    keys = [item_key(item.identity) for item in items]
    unique_missing = sorted({keys[i]: i for i in cache.missing(keys)}.values())
    todo = [items[i] for i in unique_missing]
    mine = todo[info.rank :: info.world_size]
    if mine and _engine(backbone) == "torch":
        prepare_for_inference(backbone, dev)
    skipped = (
        _compute(
            mine,
            backbone,
            cache,
            dev,
            batch_size=batch_size,
            num_workers=num_workers,
            strict=strict,
            shard_rows=shard_rows,
            show_progress=progress and info.is_main,
        )
        if mine
        else []
    )
    skipped = [s for part in gather_objects(skipped, info) for s in part]
    barrier(info)
    if info.is_main:
        cache.compact()
    barrier(info)
    index = cache.index(refresh=True)
    ok = [i for i, key in enumerate(keys) if key in index]
    features = (
        cache.read([keys[i] for i in ok])
        if ok
        else np.empty((0, backbone.feature_dim), dtype=np.float32)
    )
    return FeatureSet(
        features,
        [items[i] for i in ok],
        skipped,
        computed=len(todo) - len(skipped),
        cached=len(items) - len(todo),
        seconds=time.perf_counter() - started,
    )
