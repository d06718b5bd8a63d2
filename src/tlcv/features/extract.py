"""Extract backbone features for a list of images, through the cache, on one or many ranks."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


@dataclass
class Chunk:
    """One step of a loader, as the shared encoder sees it: the cache keys of its rows, the
    uint8 images (one row each; a clip's frames), the inputs that could not be read, and how
    far the progress bar moves. A chunk's rows are written to the cache together."""

    keys: list[str]
    images: torch.Tensor | None
    failures: list[tuple[str, str]]  # (path, reason)
    advance: int


@torch.inference_mode()
def encode_into_cache(
    chunks: Iterable[Chunk],
    backbone: Backbone | OnnxEncoder,
    cache: FeatureCache | MemoryCache,
    device: torch.device,
    *,
    batch_size: int,
    strict: bool,
    shard_rows: int,
    label: str,
    unit: str,
    total: int,
    show_progress: bool,
    hint: str,
) -> list[tuple[str, str]]:
    """The one extraction loop of images and clips: encode each chunk (in slices of
    ``batch_size``), write full shards at chunk boundaries, return what could not be read."""
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

    def encode(images: torch.Tensor) -> torch.Tensor:
        if _engine(backbone) != "torch":
            return torch.from_numpy(backbone.features(images.numpy()))
        x = normalize(images, backbone.preprocessing, device, channels_last=True)
        with autocast:
            return backbone(x).float().cpu()

    try:
        with _progress(show_progress) as bar:
            task = bar.add_task(label, total=total, rate="")
            for chunk in chunks:
                for path, reason in chunk.failures:
                    if strict:
                        raise BadImageError(reason, path=path, hint=hint)
                    skipped.append((path, reason))
                if chunk.keys:
                    for start in range(0, len(chunk.keys), batch_size):
                        rows.append(encode(chunk.images[start : start + batch_size]))
                    keys.extend(chunk.keys)
                if len(keys) >= shard_rows:
                    flush()
                bar.update(task, advance=chunk.advance)
                speed = bar.tasks[task].speed
                bar.update(task, rate=f"{speed:.0f} {unit}/s" if speed else "")
    finally:
        flush()  # whatever was computed survives an error or Ctrl-C
    return skipped


def fill_cache(
    todo: list[ImageItem],
    chunks_of: Callable[[list[ImageItem]], Iterable[Chunk]],
    backbone: Backbone | OnnxEncoder,
    cache: FeatureCache | MemoryCache,
    device: torch.device,
    info: DistInfo,
    progress: bool,
    **encode: Any,
) -> list[tuple[str, str]]:
    """This rank's share of ``todo`` encoded into the cache; every rank's skipped inputs,
    after the cache is compacted (all ranks then read the same index)."""
    mine = todo[info.rank :: info.world_size]
    if mine and _engine(backbone) == "torch":
        prepare_for_inference(backbone, device)
    show = progress and info.is_main
    skipped = (
        encode_into_cache(
            chunks_of(mine), backbone, cache, device, total=len(mine), show_progress=show, **encode
        )
        if mine
        else []
    )
    skipped = [s for part in gather_objects(skipped, info) for s in part]
    barrier(info)
    if info.is_main:
        cache.compact()
    barrier(info)
    cache.index(refresh=True)
    return skipped


def _image_chunks(
    todo: list[ImageItem], backbone, batch_size: int, num_workers: int | None
) -> Iterator[Chunk]:
    for batch in image_loader(todo, backbone.preprocessing, batch_size, num_workers):
        yield Chunk(
            [item_key(todo[i].identity) for i in batch.indices],
            batch.images if batch.indices else None,
            [(todo[i].path, reason) for i, reason in batch.failures],
            len(batch.indices) + len(batch.failures),
        )


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
    skipped = fill_cache(
        todo,
        lambda mine: _image_chunks(mine, backbone, batch_size, num_workers),
        backbone,
        cache,
        dev,
        info,
        batch_size=batch_size,
        strict=strict,
        shard_rows=shard_rows,
        label=f"extract {backbone.name}",
        unit="img",
        progress=progress,
        hint="fix or remove the file, or run without --strict to skip unreadable images",
    )
    index = cache.index()
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
