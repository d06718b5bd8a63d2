"""Typed run configuration. YAML keys match the CLI flags (``image-size`` or ``image_size``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from .catalog import DEFAULT_BACKBONE
from .errors import TlcvError


@dataclass
class TrainConfig:
    data: str
    out: str
    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"  # "imagenet" (registry default source), "none", or a file path
    # classification | clip-classification (tlcv.tasks); default: what the data holds
    task: str | None = None
    strategy: str = "features"
    classifier: str = "logreg"
    image_size: int | None = None
    per_class: int | None = None
    seed: int = 0
    split_seed: int | None = None  # seed of the train/val/test split (default: --seed)
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    batch_size: int = 64
    num_workers: int | None = None
    cache: str | None = None
    device: str = "auto"
    strict: bool = False
    overwrite: bool = False
    # --- training engine (finetune / scratch; ignored by --strategy features) ---
    epochs: int = 10
    lr: float = 1e-3
    backbone_lr_ratio: float = 0.1
    layer_decay: float = 1.0
    freeze_epochs: int = 0
    unfreeze: str = "all"  # all (fastai fine_tune) | gradual (one layer group per epoch)
    bn: str = "train"  # train | frozen (batch-norm statistics)
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    augment: str = "light"
    grad_clip: float | None = None
    accumulate: int = 1
    patience: int | None = 5
    lr_find: bool = False
    deterministic: bool = False
    resume: str | None = None
    # --- sequences (video clips or frame folders) ---
    temporal: str | None = None  # lstm | gru | bilstm | bigru | mean | frame
    frames: int = 16
    # Training windows: random (T consecutive frames at a new place each epoch; measured better
    # on whole tracks and prefixes, docs/benchmarks.md) | uniform (T spread over the clip) | stride.
    # Evaluation always spreads T frames uniformly.
    sampling: str = "random"
    stride: int = 1
    hidden: int = 256
    rnn_layers: int = 1
    dropout: float = 0.2
    frame_pick: str = "middle"  # frame head: middle | first

    def to_dict(self) -> dict:
        return asdict(self)


def read_config_file(path: str | Path, allowed: set[str]) -> dict:
    """Keys from a YAML file, normalised to parameter names and checked against ``allowed``."""
    path = Path(path)
    if not path.is_file():
        raise TlcvError(f"config file not found: {path}", path=str(path))
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TlcvError(f"cannot parse {path}: {exc}", path=str(path)) from exc
    if not isinstance(raw, dict):
        raise TlcvError(f"{path} must hold a mapping of option: value", path=str(path))
    values = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise TlcvError(
            f"unknown keys in {path}: {', '.join(unknown)}",
            path=str(path),
            hint=f"valid keys: {', '.join(sorted(allowed))}",
        )
    return values


TRAIN_KEYS = {f.name for f in fields(TrainConfig)}


def require_choices(*checks: tuple[object, tuple[str, ...], str]) -> None:
    """Each (value, allowed, flag): a clear error naming the flag and the valid choices."""
    for value, allowed, flag in checks:
        if value not in allowed:
            raise TlcvError(
                f"unknown {flag} {value!r}", hint=f"choose one of: {', '.join(allowed)}"
            )
