"""Sequences: a pretrained per-frame CNN (frozen, its per-frame features cached) + a temporal
head (LSTM / GRU / bidirectional / mean / single frame), trained on the one engine."""

from __future__ import annotations

import numpy as np

from ...backbones import create_backbone, get_backbone_spec, state_fingerprint
from ...config import TrainConfig
from ...data import make_splits
from ...engine import Recipe, TransferModule
from ...engine.lifecycle import Outcome, RunLifecycle
from ...engine.sequences import (
    ClipObjective,
    SequenceObjective,
    clip_logits,
    feature_loaders,
    frame_loaders,
)
from ...errors import TlcvError
from ...evaluation import classification_metrics
from ...features.clips import clip_notes, extract_clip_features
from ...heads import TemporalHead
from ...runs import Run
from ...strategies.common import engine_options, resolved_config, split_options
from ...video import discover_clips
from . import STRATEGIES
from .model import SequenceModel


@STRATEGIES.register("features")
@STRATEGIES.register("finetune")
def train_sequence(cfg: TrainConfig, progress: bool = False) -> Run | None:
    """features: frozen per-frame CNN (features cached) + a trained temporal head;
    finetune: the CNN trains too, on clips decoded every epoch."""
    get_backbone_spec(cfg.backbone)  # before decoding any clip; the rest: TrainConfig.validate
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=bool(cfg.resume))
    splits = make_splits(discover_clips(cfg.data, strict=cfg.strict), **split_options(cfg))
    backbone = create_backbone(cfg.backbone, cfg.weights, cfg.image_size, seed=cfg.seed)
    extract = dict(
        cache_dir=cfg.cache,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        device=cfg.device,
    )
    cf = extract_clip_features(
        splits.train + splits.val + splits.test,
        backbone,
        strict=cfg.strict,
        progress=progress,
        dist_info=life.join_group(),
        **extract,
    )
    by_id = {it.identity: seq for it, seq in zip(cf.items, cf.sequences, strict=True)}
    classes = splits.classes
    lookup = {c: i for i, c in enumerate(classes)}

    def part(items):
        kept = [it for it in items if it.identity in by_id]
        return [by_id[it.identity] for it in kept], [lookup[it.label] for it in kept]

    notes = list(splits.notes) + clip_notes(cf, cfg.frames)
    train_seq, train_y = part(splits.train)
    if len(set(train_y)) < 2:
        raise TlcvError("fewer than 2 classes have readable training clips", path=cfg.data)
    val_seq, _ = part(splits.val)
    head = TemporalHead.from_config(cfg, backbone.feature_dim, len(classes))
    end_to_end = cfg.strategy == "finetune"
    if end_to_end:
        make_loader = frame_loaders(cfg, backbone, {it.identity for it in cf.items}, lookup)
    else:
        make_loader = feature_loaders(cfg, part)
    train_loader = make_loader(splits.train, cfg.sampling, True)
    val_loader = make_loader(splits.val, "uniform", False) if val_seq else None
    recipe = Recipe.from_config(cfg)
    if end_to_end:
        objective = ClipObjective(recipe.label_smoothing)
        module = TransferModule(SequenceModel(backbone, head), len(classes), recipe, objective)
    else:
        objective = SequenceObjective(recipe.label_smoothing)
        module = TransferModule(head, len(classes), recipe, objective)
    life.begin(
        cfg.to_dict(),
        resolved_config(backbone, splits, cfg.strategy, task="clip-classification",
                        n_train=len(train_seq),
                        n_val=len(val_seq)),
    )  # fmt: skip
    trained = life.train(
        module,
        train_loader,
        val_loader,
        **engine_options(
            cfg,
            progress,
            monitor="val_acc" if val_loader else "train_acc",
            device=cfg.device if end_to_end else "cpu",  # a head on cached features is tiny
        ),
    )
    if trained is None:
        return None
    if end_to_end:  # score with the fine-tuned CNN's own per-frame features
        backbone.weights_id = state_fingerprint(backbone.net)
        cf = extract_clip_features(cf.items, backbone.eval(), **extract)
        by_id.clear()
        by_id.update({it.identity: seq for it, seq in zip(cf.items, cf.sequences, strict=True)})
    metrics: dict[str, dict] = {}
    for name, items in splits.named():
        seqs, ys = part(items)
        if seqs:
            pred = clip_logits(head, seqs, frames=cfg.frames).argmax(1)
            metrics[name] = classification_metrics(np.array(ys), pred, classes)
    metrics["selection"] = trained.selection()
    metrics["extraction"] = {
        "frames_computed": cf.frames_computed,
        "clips_cached": cf.clips_cached,
        "seconds": round(cf.seconds, 2),
    }
    info = {
        "strategy": cfg.strategy,
        "frames": cfg.frames,
        "sampling": cfg.sampling,
        "temporal": cfg.temporal,
    }
    model = SequenceModel(backbone, head)
    spec = {"type": "temporal", **head.config}
    return life.finish(Outcome(model, classes, spec, info, metrics, notes, list(cf.skipped)))
