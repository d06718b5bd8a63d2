"""Detection by transfer, the three kinds on the one engine: ``finetune`` (the ImageNet encoder
at the reduced learning rate, the freeze schedules), ``features`` (the encoder frozen, FPN and
heads learn) and ``scratch`` (the same detector from random weights). Model selection on
validation mAP@0.5."""

from __future__ import annotations

import lightning as L

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

DEFAULT_SIZE = 800  # short side; GTSDB scenes are 1360x800 with signs from 16 px


def _train(cfg: TrainConfig, progress: bool, kind: str) -> Run | None:
    from .coco import check_coco_choice, load_coco
    from .data import discover_detection, split_items
    from .evaluate import score_items
    from .loading import detection_loader, max_side
    from .model import build_model, parse_anchor_sizes
    from .objective import DetectionObjective

    cfg, notes, freeze = transfer_kind(cfg, kind)
    if cfg.detector_weights:
        check_coco_choice(cfg.detector, cfg.backbone, kind)
    size = cfg.image_size or DEFAULT_SIZE
    anchors = parse_anchor_sizes(cfg.anchor_sizes)  # a typo fails before the scenes are read
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=bool(cfg.resume))
    source = discover_detection(
        cfg.data,
        strict=cfg.strict,
        class_map=cfg.class_map,
        allow_outside=cfg.allow_outside_data,
    )
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    parts = split_items(
        source.all_items(),
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=split_seed,
        shots=cfg.max_images,
        shots_seed=cfg.seed,
    )
    notes = source.notes + notes
    classes = source.classes
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # with COCO weights the encoder's tensors come from the detector's file
    encoder_weights = "none" if cfg.detector_weights else cfg.weights
    backbone = create_backbone(cfg.backbone, encoder_weights, None, seed=cfg.seed)
    spec = {
        "detector": cfg.detector,
        "num_classes": len(classes),
        "image_size": size,
        "max_size": max_side(size),
        "anchors": anchors,
        "fpn_channels": cfg.fpn_channels,
    }
    model, head_spec = build_model(backbone, spec, seed=cfg.seed)
    if cfg.detector_weights:
        coco, fresh = load_coco(model, cfg.detector, cfg.detector_weights)
        backbone.weights_source = f"COCO detector: {coco}"
        notes.append(
            f"detector started from torchvision's COCO weights ({coco}); re-sized to "
            f"{len(classes)} classes: {', '.join(fresh) or 'none'}"
        )
    module = TransferModule(model, len(classes), Recipe.from_config(cfg), DetectionObjective())
    batches = dict(batch_size=cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers)
    train_loader = detection_loader(
        parts["train"], classes, size, augment=cfg.augment, crop=cfg.train_crop, **batches
    )
    val_loader = (
        detection_loader(parts["val"], classes, size, augment=None, **batches)
        if parts["val"]
        else None
    )
    resolved = resolved_record(
        backbone, kind, classes, parts, task="detection", image_size=size, taps=head_spec["taps"]
    )
    life.begin(cfg.to_dict(), resolved)
    monitor = "val_map50" if val_loader else None
    trained = train_dense(life, cfg, progress, module, (train_loader, val_loader), freeze,
                          monitor=monitor, stop_on=("val_map50", "max"))  # fmt: skip
    if trained is None:
        return None
    notes += best_epoch_note(trained)
    metrics: dict[str, dict] = {}
    device = resolve_device(cfg.device)
    for name in ("val", "test"):
        if parts[name]:
            result, _, bad = score_items(model, parts[name], classes, device)
            metrics[name] = {k: v for k, v in result.items() if k not in ("pr_curves", "per_image")}
            module.skipped.extend(bad)
    metrics["selection"] = trained.selection()
    info = {"strategy": kind, "detector": cfg.detector, "image_size": size,
            "train_crop": cfg.train_crop}  # fmt: skip
    skipped = source.missing + sorted(set(module.skipped))
    return life.finish(Outcome(model, classes, head_spec, info, metrics, notes, skipped))


register_kinds(STRATEGIES, _train, "detect")
