"""What every strategy asks of its configuration the same way (splits, the resolved record)."""

from __future__ import annotations

from ..backbones import Backbone
from ..config import TrainConfig
from ..data import Splits
from ..engine import FreezeSchedule


def split_options(cfg: TrainConfig) -> dict:
    """make_splits' options from a TrainConfig: one place, so every strategy splits alike."""
    return dict(
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        per_class=cfg.per_class,
        seed=cfg.seed,
        split_seed=cfg.split_seed,
    )


def resolved_config(backbone: Backbone, splits: Splits, strategy: str, **extra) -> dict:
    """config.yaml's ``resolved`` block: what the flags turned into for this run."""
    return {
        "strategy": strategy,
        "preprocessing": backbone.preprocessing.to_dict(),
        "weights_source": backbone.weights_source,
        "weights_id": backbone.weights_id,
        "classes": splits.classes,
        "n_train": len(splits.train),
        "n_val": len(splits.val),
        "n_test": len(splits.test),
        **extra,
    }


def engine_options(cfg: TrainConfig, progress: bool, **override) -> dict:
    """The training engine's options as `tlcv train` flags set them (RunLifecycle.train)."""
    options = dict(
        monitor="val_acc",
        callbacks=[FreezeSchedule(cfg.freeze_epochs, cfg.unfreeze, cfg.bn)],
        epochs=cfg.epochs,
        device=cfg.device,
        grad_clip=cfg.grad_clip,
        accumulate=cfg.accumulate,
        patience=cfg.patience,
        progress=progress,
        deterministic=cfg.deterministic,
    )
    return {**options, **override}
