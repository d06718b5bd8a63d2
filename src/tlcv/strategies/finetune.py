"""Fine-tuning (pretrained backbone at a reduced learning rate) and training from scratch
(same architecture and recipe, random initialisation), both on the one training engine."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from ..backbones import create_backbone, get_backbone_spec
from ..config import TrainConfig, require_choices
from ..data import discover, make_splits
from ..engine import (
    AUGMENTS,
    FreezeSchedule,
    Recipe,
    RunArtifacts,
    TransferModule,
    build_trainer,
    labelled_loader,
)
from ..engine.callbacks import BN_MODES, UNFREEZE_MODES
from ..engine.fit import fit, restore_best
from ..errors import TlcvError
from ..evaluation import classification_metrics
from ..runs import ClassifierModel, Run, RunWriter, load_run
from . import register_strategy


def _check(cfg: TrainConfig) -> None:
    get_backbone_spec(cfg.backbone)
    require_choices(
        (cfg.augment, AUGMENTS, "--augment"),
        (cfg.unfreeze, UNFREEZE_MODES, "--unfreeze"),
        (cfg.bn, BN_MODES, "--bn"),
        (cfg.optimizer, ("adamw", "sgd"), "--optimizer"),
    )
    if cfg.epochs < 1 or cfg.lr <= 0 or cfg.batch_size < 1:
        raise TlcvError("--epochs, --lr and --batch-size must be positive")


@torch.inference_mode()
def predict_logits(model: nn.Module, loader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    from ..data import normalize

    model = model.to(device).eval()
    logits, labels = [], []
    for x, y, _ in loader:
        if len(x):
            x = normalize(x, model.backbone.preprocessing, device, channels_last=True)
            logits.append(model(x).float().cpu())
            labels.append(y)
    if not logits:
        return np.empty((0, 0)), np.empty(0, dtype=int)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def _train(cfg: TrainConfig, progress: bool, scratch: bool) -> Run | None:
    _check(cfg)
    rank = int(os.environ.get("RANK", "0"))
    run_dir = Path(cfg.out).expanduser()
    notes: list[str] = []
    if scratch:
        if cfg.weights != "none" or cfg.backbone_lr_ratio != 1.0 or cfg.freeze_epochs:
            notes.append(
                "scratch: random initialisation, one learning rate for all layers, "
                "no frozen epochs (nothing is pretrained)"
            )
        cfg = replace(cfg, weights="none", backbone_lr_ratio=1.0, freeze_epochs=0)
    if not cfg.resume and rank == 0:
        RunWriter.check_free(run_dir, cfg.overwrite)
    source = discover(cfg.data, strict=cfg.strict)
    splits = make_splits(
        source,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        per_class=cfg.per_class,
        seed=cfg.seed,
        split_seed=cfg.split_seed,
    )
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
    loader_args = dict(batch_size=cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers)
    train_loader = labelled_loader(
        splits.train, classes, prep, augment=cfg.augment, shuffle=True, **loader_args
    )
    val_loader = (
        labelled_loader(splits.val, classes, prep, augment="none", shuffle=False, **loader_args)
        if splits.val
        else None
    )
    writer = RunWriter(run_dir, overwrite=True) if rank == 0 else None
    if writer:
        writer.config(
            {
                **cfg.to_dict(),
                "resolved": {
                    "strategy": "scratch" if scratch else "finetune",
                    "preprocessing": prep.to_dict(),
                    "weights_source": backbone.weights_source,
                    "weights_id": backbone.weights_id,
                    "classes": classes,
                    "n_train": len(splits.train),
                    "n_val": len(splits.val),
                    "n_test": len(splits.test),
                },
            }
        )
    artifacts = RunArtifacts(run_dir, monitor="val_acc" if val_loader else "train_acc")
    trainer = build_trainer(
        run_dir,
        epochs=cfg.epochs,
        device=cfg.device,
        grad_clip=cfg.grad_clip,
        accumulate=cfg.accumulate,
        patience=cfg.patience,
        has_val=val_loader is not None,
        progress=progress,
        deterministic=cfg.deterministic,
        callbacks=[FreezeSchedule(cfg.freeze_epochs, cfg.unfreeze, cfg.bn), artifacts],
    )
    if cfg.lr_find and not cfg.resume:
        _find_lr(trainer, module, train_loader, val_loader, recipe, run_dir, notes)
    fit(trainer, module, train_loader, val_loader, run_dir, bool(cfg.resume))
    if trainer.global_rank != 0:
        return None
    if restore_best(module, run_dir):
        notes.append(
            f"weights of epoch {artifacts.best_epoch} (best {artifacts.monitor} on the "
            "validation split) are the run's model"
        )
    from ..backbones import state_fingerprint

    model.backbone.weights_id = state_fingerprint(model.backbone.net)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu")
    metrics: dict[str, dict] = {}
    for name, part in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if part:
            loader = labelled_loader(
                part, classes, prep, augment="none", shuffle=False, **loader_args
            )
            logits, labels = predict_logits(model, loader, device)
            metrics[name] = classification_metrics(labels, logits.argmax(1), classes)
    metrics["selection"] = {
        "best_epoch": artifacts.best_epoch,
        "monitor": artifacts.monitor,
        "epochs_run": trainer.current_epoch,
    }
    if module.skipped:
        notes.append(f"{len(set(module.skipped))} unreadable image(s) skipped; see skipped.csv")
    writer.skipped(splits.missing + sorted(set(module.skipped)))
    writer.notes(notes)
    writer.metrics(metrics)
    writer.model(
        model.cpu(),
        classes,
        {"type": "linear", "in_features": backbone.feature_dim, "num_classes": len(classes)},
        {"strategy": "scratch" if scratch else "finetune"},
    )
    return load_run(run_dir)


def _find_lr(trainer, module, train_loader, val_loader, recipe, run_dir, notes) -> None:
    from lightning.pytorch.tuner import Tuner

    finder = Tuner(trainer).lr_find(
        module,
        train_loader,
        val_loader,
        min_lr=1e-6,
        max_lr=1.0,
        num_training=min(60, len(train_loader) * 3),
        update_attr=False,
    )
    suggestion = finder.suggestion() if finder is not None else None
    if suggestion:
        recipe.lr = float(suggestion)
        notes.append(f"learning-rate finder chose --lr {recipe.lr:.2e} (plot: lr_find.png)")
        fig = finder.plot(suggest=True)
        fig.savefig(run_dir / "lr_find.png")


@register_strategy("finetune")
def train_finetune(cfg: TrainConfig, progress: bool = False) -> Run | None:
    return _train(cfg, progress, scratch=False)


@register_strategy("scratch")
def train_scratch(cfg: TrainConfig, progress: bool = False) -> Run | None:
    return _train(cfg, progress, scratch=True)
