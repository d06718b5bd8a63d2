"""Options of ``tlcv adapt`` (YAML keys match the flags, as for ``tlcv train``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..backbones import DEFAULT_BACKBONE

MODES = ("frozen", "full")
SELECTIONS = ("source-val", "entropy", "last")


@dataclass
class AdaptConfig:
    source: str
    target: str
    out: str
    method: str = "source-only"
    backbone: str = DEFAULT_BACKBONE
    weights: str = "imagenet"
    mode: str = "frozen"  # frozen: bottleneck + classifier on cached features; full: all layers
    image_size: int | None = None
    seed: int = 0
    epochs: int = 20
    lr: float = 1e-3  # head (bottleneck, classifier, discriminators)
    backbone_lr_ratio: float = 0.1  # full mode: pretrained layers at this fraction of --lr
    batch_size: int = 32
    bottleneck: int = 256
    dropout: float = 0.5
    trade_off: float = 1.0  # weight of every adaptation term
    select: str = "source-val"  # source-val | entropy | last (never target labels)
    oracle: bool = False  # also report the best epoch on target labels, labelled as oracle
    val_fraction: float = 0.1  # held-out source share for model selection
    label_smoothing: float = 0.1
    weight_decay: float = 1e-3
    optimizer: str = "adamw"
    augment: str = "light"  # full mode
    warmup_epochs: float = 1.0
    fallback: str = "none"  # none | source-only: keep the source-only model if the check fires
    plots: bool = True  # t-SNE picture (proxy A-distance is always computed)
    num_workers: int | None = None
    cache: str | None = None
    device: str = "auto"
    strict: bool = False
    overwrite: bool = False
    resume: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


ADAPT_KEYS = {f.name for f in fields(AdaptConfig)}
