"""The on-disk feature cache: safetensors shards keyed by image identity.

A cache directory belongs to one (backbone, weights, preprocessing) namespace. Each shard is
written atomically, so a crash loses at most the shard in progress and never leaves a
half-written file that a later run would read. Re-runs look up keys and compute only the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import safe_open

from ..io import fingerprint, remove_stale_temps, save_tensors, write_json

if TYPE_CHECKING:
    import torch

    from ..data import ImageItem

CACHE_VERSION = 1


@dataclass
class FeatureSet:
    """Features of the readable items, in input order, plus what was skipped and why."""

    features: np.ndarray
    items: list[ImageItem]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0  # wall time of the whole call (lookup, compute, read-back)

    @property
    def labels(self) -> list[str | None]:
        return [item.label for item in self.items]


def default_cache_dir() -> Path:
    env = os.environ.get("TLCV_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tlcv" / "features"


def item_key(identity: str) -> str:
    # surrogateescape: a file name that is not valid UTF-8 (bytes from another system) still
    # gets a stable key instead of aborting the run.
    return hashlib.sha1(identity.encode("utf-8", "surrogateescape")).hexdigest()[:24]


class FeatureCache:
    def __init__(self, root: str | Path, namespace: dict):
        self.namespace = {**namespace, "cache_version": CACHE_VERSION}
        name = str(namespace.get("backbone", "model")).replace(":", "_").replace("/", "_")
        self.dir = Path(root).expanduser() / f"{name}-{fingerprint(self.namespace)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.dir)  # shards of killed writers
        if not (self.dir / "namespace.json").exists():
            write_json(self.dir / "namespace.json", self.namespace)
        self._index: dict[str, tuple[Path, int]] | None = None

    def shards(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("shard-*.safetensors"))

    def index(self, refresh: bool = False) -> dict[str, tuple[Path, int]]:
        """key -> (shard, row), from the shard headers only (no tensor data is read)."""
        if self._index is None or refresh:
            index: dict[str, tuple[Path, int]] = {}
            for shard in self.shards():
                try:
                    with safe_open(str(shard), framework="numpy") as fh:
                        keys = json.loads(fh.metadata()["keys"])
                except Exception:  # noqa: BLE001 - a damaged shard is ignored and recomputed
                    continue
                for row, key in enumerate(keys):
                    index[key] = (shard, row)
            self._index = index
        return self._index

    def missing(self, keys: list[str]) -> list[int]:
        index = self.index()
        return [i for i, key in enumerate(keys) if key not in index]

    def write(self, keys: list[str], features: torch.Tensor) -> Path:
        shard = self.dir / f"shard-{uuid.uuid4().hex[:12]}.safetensors"
        save_tensors(shard, {"features": features.float()}, {"keys": json.dumps(keys)})
        if self._index is not None:
            for row, key in enumerate(keys):
                self._index[key] = (shard, row)
        return shard

    def read(self, keys: list[str]) -> np.ndarray:
        """Features for ``keys`` in order (all must be present)."""
        index = self.index()
        by_shard: dict[Path, list[tuple[int, int]]] = {}
        for pos, key in enumerate(keys):
            shard, row = index[key]
            by_shard.setdefault(shard, []).append((pos, row))
        out: np.ndarray | None = None
        for shard, pairs in by_shard.items():
            with safe_open(str(shard), framework="numpy") as fh:
                block = fh.get_tensor("features")
            if out is None:
                out = np.empty((len(keys), block.shape[1]), dtype=np.float32)
            positions, rows = zip(*pairs, strict=True)
            out[list(positions)] = block[list(rows)]
        if out is None:
            return np.empty((0, 0), dtype=np.float32)
        return out

    def compact(self, min_shards: int = 8) -> None:
        """Merge many small shards into one (fewer files to open on the next run)."""
        shards = self.shards()
        if len(shards) < min_shards:
            return
        index = self.index(refresh=True)
        import torch

        keys = list(index)
        merged = torch.from_numpy(self.read(keys))
        self.write(keys, merged)
        kept = {self._index[k][0] for k in keys}
        for shard in shards:
            if shard not in kept:
                shard.unlink(missing_ok=True)
        self.index(refresh=True)


class MemoryCache:
    """FeatureCache's interface without a disk: for one-off inference (``predict``), where
    writing (and fsyncing) a shard per call costs more than computing the features again."""

    def __init__(self, namespace: dict):
        self.namespace = namespace
        self._rows: dict[str, np.ndarray] = {}

    def index(self, refresh: bool = False) -> dict[str, np.ndarray]:
        return self._rows

    def missing(self, keys: list[str]) -> list[int]:
        return [i for i, key in enumerate(keys) if key not in self._rows]

    def write(self, keys: list[str], features) -> None:
        block = features.float().numpy()
        for row, key in enumerate(keys):
            self._rows[key] = block[row]

    def read(self, keys: list[str]) -> np.ndarray:
        if not keys:
            return np.empty((0, 0), dtype=np.float32)
        return np.stack([self._rows[key] for key in keys]).astype(np.float32, copy=False)

    def compact(self, min_shards: int = 8) -> None:
        pass
