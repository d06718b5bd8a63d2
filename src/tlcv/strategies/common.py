"""What every strategy asks of its configuration the same way (splits, the resolved record)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..backbones import Backbone, state_fingerprint
from ..config import TrainConfig
from ..data import Splits
from ..engine import FreezeSchedule
from ..errors import TlcvError

KINDS = ("finetune", "features", "scratch")  # the three kinds of transfer, for dense tasks


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
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    return resolved_record(backbone, strategy, splits.classes, parts, **extra)


def resolved_record(
    backbone: Backbone, strategy: str, classes: list[str], parts: dict[str, list], **extra
) -> dict:
    """The same block from the items per split (dense tasks split pairs and scenes their way)."""
    return {
        "strategy": strategy,
        "preprocessing": backbone.preprocessing.to_dict(),
        "weights_source": backbone.weights_source,
        "weights_id": backbone.weights_id,
        "classes": classes,
        **{f"n_{name}": len(items) for name, items in parts.items()},
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
        precision=cfg.precision,
    )
    return {**options, **override}


def transfer_kind(cfg: TrainConfig, kind: str) -> tuple[TrainConfig, list[str], int]:
    """Dense tasks (segmentation, detection): the recipe checked, what ``kind`` means for the
    config (scratch: random weights, one learning rate, nothing frozen), the notes it leaves,
    and how many epochs the encoder stays frozen (features: all of them)."""
    if cfg.epochs < 1 or cfg.lr <= 0 or cfg.batch_size < 1:
        raise TlcvError("--epochs, --lr and --batch-size must be positive")
    notes = []
    if kind == "scratch":
        cfg = replace(cfg, weights="none", backbone_lr_ratio=1.0, freeze_epochs=0)
        notes.append("scratch: random initialisation, one learning rate for every layer")
    return cfg, notes, cfg.epochs if kind == "features" else cfg.freeze_epochs


def train_dense(life, cfg: TrainConfig, progress: bool, module, loaders, freeze: int, **engine):
    """What every kind of a dense task (segmentation, detection) does to train: fit on the
    engine under the freeze schedule (``freeze`` epochs with the encoder frozen), then name
    the chosen epoch and the trained encoder's weights. None on ranks > 0."""
    schedule = FreezeSchedule(freeze, cfg.unfreeze, cfg.bn)
    options = engine_options(cfg, progress, callbacks=[schedule], **engine)
    trained = life.train(module, *loaders, **options)
    if trained is not None:
        backbone = module.model.backbone
        backbone.weights_id = state_fingerprint(backbone.net)
    return trained


def best_epoch_note(trained) -> list[str]:
    if not trained.restored_best:
        return []
    a = trained.artifacts
    return [
        f"weights of epoch {a.best_epoch} (best {a.monitor} on the validation split) are "
        "the run's model"
    ]


def register_kinds(registry, train: Callable, task: str) -> None:
    """finetune / features / scratch of a dense task, each ``(cfg, progress) -> Run``."""
    for kind in KINDS:

        def trainer(cfg: TrainConfig, progress: bool = False, _kind: str = kind):
            return train(cfg, progress, _kind)

        trainer.__name__ = f"{task}_{kind}"
        trainer.__doc__ = f"{task}, {kind} transfer"
        registry.register(kind)(trainer)
