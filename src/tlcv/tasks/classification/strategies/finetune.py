"""Fine-tuning (pretrained backbone at a reduced learning rate) and training from scratch
(same architecture and recipe, random initialisation), both on the one training engine."""

from __future__ import annotations

from dataclasses import replace

import lightning as L
import torch
from torch import nn

from ....backbones import create_backbone, get_backbone_spec, state_fingerprint
from ....config import TrainConfig
from ....data import discover, make_splits
from ....engine import Recipe, TransferModule, labelled_loader
from ....engine.lifecycle import Outcome, RunLifecycle
from ....engine.tuning import find_lr as lr_range_test
from ....engine.tuning import predict_logits
from ....errors import TlcvError
from ....evaluation import classification_metrics
from ....features.extract import resolve_device
from ....heads.model import ClassifierModel
from ....runs import Run
from ....strategies.common import engine_options, resolved_config, split_options
from .. import STRATEGIES
from ..calibration import binary_record


def _check(cfg: TrainConfig) -> None:
    get_backbone_spec(cfg.backbone)  # choices were validated with the config (TrainConfig)
    if cfg.epochs < 1 or cfg.lr <= 0 or cfg.batch_size < 1:
        raise TlcvError("--epochs, --lr and --batch-size must be positive")


def _train(cfg: TrainConfig, progress: bool, scratch: bool) -> Run | None:
    _check(cfg)
    strategy = "scratch" if scratch else "finetune"
    notes: list[str] = []
    if scratch:
        if cfg.weights != "none" or cfg.backbone_lr_ratio != 1.0 or cfg.freeze_epochs:
            notes.append(
                "scratch: random initialisation, one learning rate for all layers, "
                "no frozen epochs (nothing is pretrained)"
            )
        cfg = replace(cfg, weights="none", backbone_lr_ratio=1.0, freeze_epochs=0)
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=bool(cfg.resume))
    splits = make_splits(discover(cfg.data, strict=cfg.strict), **split_options(cfg))
    notes = list(splits.notes) + notes
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = create_backbone(cfg.backbone, cfg.weights, cfg.image_size, seed=cfg.seed)
    classes = splits.classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = nn.Linear(backbone.feature_dim, len(classes))
    model = ClassifierModel(backbone, head)
    recipe = Recipe.from_config(cfg)
    module = TransferModule(model, len(classes), recipe)
    prep = backbone.preprocessing
    loader_args = dict(
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        num_workers=cfg.num_workers,
        memory=cfg.memory_cache,
    )

    def loader(items, augment="none", shuffle=False):
        return labelled_loader(
            items, classes, prep, augment=augment, shuffle=shuffle, **loader_args
        )

    train_loader = loader(splits.train, cfg.augment, shuffle=True)
    val_loader = loader(splits.val) if splits.val else None
    life.begin(cfg.to_dict(), resolved_config(backbone, splits, strategy))
    find_lr = None
    if cfg.lr_find and not cfg.resume:

        def find_lr(trainer):
            lr_range_test(trainer, module, train_loader, val_loader, recipe, life.run_dir, notes)

    monitor = "val_acc" if val_loader else "train_acc"
    trained = life.train(
        module,
        train_loader,
        val_loader,
        **engine_options(cfg, progress, monitor=monitor, before_fit=find_lr),
    )
    if trained is None:
        return None
    if trained.restored_best:
        notes.append(
            f"weights of epoch {trained.artifacts.best_epoch} (best {trained.artifacts.monitor} "
            "on the validation split) are the run's model"
        )
    model.backbone.weights_id = state_fingerprint(model.backbone.net)
    device = resolve_device(cfg.device)
    metrics: dict[str, dict] = {}
    val_logits = val_labels = None
    for name, part in splits.named():
        if part:
            logits, labels = predict_logits(model, loader(part), device)
            metrics[name] = classification_metrics(labels, logits.argmax(1), classes)
            if name == "val":
                val_logits, val_labels = logits, labels
    info = {"strategy": strategy}
    binary = binary_record(cfg, classes, val_logits, val_labels, notes)
    if binary:
        info["binary"] = binary
    metrics["selection"] = trained.selection()
    if module.skipped:
        notes.append(f"{len(set(module.skipped))} unreadable image(s) skipped; see skipped.csv")
    head_spec = {"type": "linear", "in_features": backbone.feature_dim, "num_classes": len(classes)}
    return life.finish(
        Outcome(
            model,
            classes,
            head_spec,
            info,
            metrics,
            notes,
            splits.missing + sorted(set(module.skipped)),
        )
    )


@STRATEGIES.register("finetune")
def train_finetune(cfg: TrainConfig, progress: bool = False) -> Run | None:
    return _train(cfg, progress, scratch=False)


@STRATEGIES.register("scratch")
def train_scratch(cfg: TrainConfig, progress: bool = False) -> Run | None:
    return _train(cfg, progress, scratch=True)
