"""Segmentation by transfer, the three kinds on the one engine: ``finetune`` (pretrained encoder
at the reduced learning rate, the freeze schedules), ``features`` (pretrained encoder frozen
throughout, only the decoder learns) and ``scratch`` (the same network from random weights)."""

from __future__ import annotations

import lightning as L
import torch

from ...backbones import create_backbone
from ...config import TrainConfig
from ...engine import Recipe, TransferModule
from ...engine.lifecycle import Outcome, RunLifecycle
from ...features.extract import resolve_device
from ...runs import Run
from ...strategies.common import (
    best_epoch_note,
    register_kinds,
    resolved_record,
    train_dense,
    transfer_kind,
)
from . import STRATEGIES

DEFAULT_SIZE = 256  # short side; CamVid frames are 360 px high


def pixel_counts(items, fmt, num_classes: int) -> torch.Tensor:
    counts = torch.zeros(num_classes, dtype=torch.long)
    for item in items:
        mask = torch.from_numpy(fmt.decode(item.mask)).long().reshape(-1)
        counts += torch.bincount(mask[mask < num_classes], minlength=num_classes)
    return counts


def _train(cfg: TrainConfig, progress: bool, kind: str) -> Run | None:
    from ...evaluation.bootstrap import DEFAULT_RESAMPLES
    from .data import IGNORE, discover_segmentation, split_pairs
    from .evaluate import score_pairs, write_panels
    from .inference import palette
    from .loading import pair_loader
    from .model import build_model
    from .objective import SegmentationObjective, median_frequency_weights

    cfg, notes, freeze = transfer_kind(cfg, kind)
    size = cfg.image_size or DEFAULT_SIZE
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=bool(cfg.resume))
    source = discover_segmentation(cfg.data, strict=cfg.strict, ignore_index=cfg.ignore_index)
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    parts, split_notes = split_pairs(
        source,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=split_seed,
        shots=cfg.max_images,
        shots_seed=cfg.seed,
    )
    notes = source.notes + split_notes + notes
    fmt, classes = source.format, source.classes
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = create_backbone(cfg.backbone, cfg.weights, None, seed=cfg.seed)
    model, head_spec = build_model(backbone, cfg.decoder, len(classes), size, seed=cfg.seed)
    weights = None
    if cfg.class_weighting == "median-frequency":
        weights = median_frequency_weights(pixel_counts(parts["train"], fmt, len(classes)))
    objective = SegmentationObjective(len(classes), weights, loss=cfg.loss)
    module = TransferModule(
        model, len(classes), Recipe.from_config(cfg), objective, ignore_index=IGNORE
    )
    batches = dict(batch_size=cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers)
    train_loader = pair_loader(parts["train"], fmt, size, augment=cfg.augment, flips=cfg.flips,
                               **batches)  # fmt: skip
    val_loader = (
        pair_loader(parts["val"], fmt, size, augment=None, **batches) if parts["val"] else None
    )
    resolved = resolved_record(
        backbone, kind, classes, parts, task="segmentation", image_size=size, taps=head_spec["taps"]
    )
    life.begin(cfg.to_dict(), resolved)
    # features: the pretrained encoder stays frozen (BN statistics too) for every epoch
    monitor = "val_miou" if val_loader else "train_acc"
    trained = train_dense(life, cfg, progress, module, (train_loader, val_loader), freeze,
                          monitor=monitor)  # fmt: skip
    if trained is None:
        return None
    notes += best_epoch_note(trained)
    metrics: dict[str, dict] = {}
    device = resolve_device(cfg.device)
    for name in ("val", "test"):  # at each image's own size, as published figures are
        if parts[name]:
            result, kept, bad = score_pairs(model, parts[name], fmt, size, device, keep=4,
                                            bootstrap=DEFAULT_RESAMPLES)  # fmt: skip
            metrics[name] = {k: v for k, v in result.items() if k not in ("confusion", "per_image")}
            module.skipped.extend(bad)
            if name == "val":  # a look at the chosen model: image | truth | prediction
                write_panels(kept, palette(len(classes), fmt.to_dict()), life.run_dir / "overlays")
    metrics["selection"] = trained.selection()
    info = {"strategy": kind, "decoder": cfg.decoder, "image_size": size,
            "mask_format": fmt.to_dict()}  # fmt: skip
    skipped = source.missing + sorted(set(module.skipped))
    if module.skipped:
        notes.append(f"{len(set(module.skipped))} unreadable pair(s) skipped; see skipped.csv")
    return life.finish(Outcome(model, classes, head_spec, info, metrics, notes, skipped))


register_kinds(STRATEGIES, _train, "segment")
