"""Sequences: a pretrained per-frame CNN (frozen, its per-frame features cached) + a temporal
head (LSTM / GRU / bidirectional / mean / single frame), trained on the one engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..backbones import create_backbone, get_backbone_spec, state_fingerprint
from ..config import TrainConfig, require_choices
from ..data import eval_transform, make_splits
from ..distributed import init_from_env
from ..engine import FreezeSchedule, Recipe, RunArtifacts, TransferModule, build_trainer
from ..engine.data import EpochSampler
from ..engine.fit import fit, restore_best
from ..engine.sequences import (
    ClipFrames,
    ClipObjective,
    FeatureSequences,
    SequenceObjective,
    pad_frames,
    sequence_loader,
)
from ..errors import TlcvError
from ..evaluation import classification_metrics
from ..features.clips import extract_clip_features
from ..heads import FRAME_PICKS, TEMPORAL_HEADS, TemporalHead
from ..runs import Run, RunWriter, SequenceModel, load_run
from ..video import SAMPLINGS, discover_clips


def check_sequence_options(cfg: TrainConfig) -> None:
    get_backbone_spec(cfg.backbone)
    require_choices(
        (cfg.temporal, TEMPORAL_HEADS, "--temporal"),
        (cfg.sampling, SAMPLINGS, "--sampling"),
        (cfg.frame_pick, FRAME_PICKS, "--frame-pick"),
    )
    if cfg.frames < 1:
        raise TlcvError("--frames must be at least 1")
    if cfg.strategy not in ("features", "finetune"):
        raise TlcvError(
            f"--strategy {cfg.strategy} does not apply to clips",
            hint="features (frozen per-frame CNN, cached; the default) or finetune (end to end)",
        )


@torch.no_grad()
def clip_logits(
    head: TemporalHead,
    sequences: list[np.ndarray],
    *,
    frames: int,
    prefix: int | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Clip logits with uniform sampling (optionally from the first ``prefix`` frames only)."""
    from ..engine.sequences import pad_batch

    head = head.eval()
    ds = FeatureSequences(
        sequences,
        [0] * len(sequences),
        frames=frames,
        sampling="uniform",
        stride=1,
        seed=0,
        prefix=prefix,
    )
    out = []
    for start in range(0, len(ds), batch_size):
        feats, lengths, _ = pad_batch(
            [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        )
        out.append(head(feats, lengths))
    return torch.cat(out).numpy() if out else np.empty((0, 0))


def train_sequence(cfg: TrainConfig, progress: bool = False) -> Run | None:
    check_sequence_options(cfg)
    info = init_from_env()
    run_dir = Path(cfg.out).expanduser()
    if info.is_main and not cfg.resume:
        RunWriter.check_free(run_dir, cfg.overwrite)
    source = discover_clips(cfg.data, strict=cfg.strict)
    splits = make_splits(
        source,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        per_class=cfg.per_class,
        seed=cfg.seed,
        split_seed=cfg.split_seed,
    )
    backbone = create_backbone(cfg.backbone, cfg.weights, cfg.image_size, seed=cfg.seed)
    everything = splits.train + splits.val + splits.test
    cf = extract_clip_features(
        everything,
        backbone,
        cache_dir=cfg.cache,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        device=cfg.device,
        strict=cfg.strict,
        progress=progress,
        dist_info=info,
    )
    by_id = {it.identity: seq for it, seq in zip(cf.items, cf.sequences, strict=True)}
    skipped_clips = list(cf.skipped)
    classes = splits.classes
    lookup = {c: i for i, c in enumerate(classes)}

    def part(items):
        kept = [it for it in items if it.identity in by_id]
        return [by_id[it.identity] for it in kept], [lookup[it.label] for it in kept]

    notes = list(splits.notes)
    short = sum(len(s) < cfg.frames for s in cf.sequences)
    if short:
        notes.append(
            f"{short} clip(s) have fewer than --frames {cfg.frames} frames: they are "
            "used whole, as shorter packed sequences (nothing is padded into the RNN)"
        )
    if cf.skipped:
        notes.append(f"{len(cf.skipped)} unreadable clip(s) skipped; see skipped.csv")
    train_seq, train_y = part(splits.train)
    if len(set(train_y)) < 2:
        raise TlcvError("fewer than 2 classes have readable training clips", path=cfg.data)
    val_seq, val_y = part(splits.val)
    ds_args = dict(frames=cfg.frames, stride=cfg.stride, seed=cfg.seed)
    train_loader = sequence_loader(
        FeatureSequences(train_seq, train_y, sampling=cfg.sampling, **ds_args),
        batch_size=cfg.batch_size,
        shuffle=True,
        seed=cfg.seed,
    )
    val_loader = (
        sequence_loader(
            FeatureSequences(val_seq, val_y, sampling="uniform", **ds_args),
            batch_size=cfg.batch_size,
            shuffle=False,
            seed=cfg.seed,
        )
        if val_seq
        else None
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = TemporalHead(
            cfg.temporal,
            backbone.feature_dim,
            len(classes),
            hidden=cfg.hidden,
            layers=cfg.rnn_layers,
            dropout=cfg.dropout,
            frame_pick=cfg.frame_pick,
        )
    recipe = Recipe.from_config(cfg)
    end_to_end = cfg.strategy == "finetune"
    if end_to_end:
        # The CNN trains too: clips are decoded every epoch and go through the whole network.
        model = SequenceModel(backbone, head)
        module = TransferModule(model, len(classes), recipe, ClipObjective(recipe.label_smoothing))
        readable = {it.identity for it in cf.items}

        def clip_loader(items, sampling, shuffle):
            kept = [it for it in items if it.identity in readable]
            ds = ClipFrames(
                kept,
                [lookup[it.label] for it in kept],
                eval_transform(backbone.preprocessing),
                frames=cfg.frames,
                sampling=sampling,
                stride=cfg.stride,
                seed=cfg.seed,
                draft_size=backbone.preprocessing.resize_size,
            )
            return DataLoader(
                ds,
                batch_size=min(cfg.batch_size, max(1, len(ds))),
                sampler=EpochSampler(len(ds), cfg.seed, shuffle),
                collate_fn=pad_frames,
                num_workers=cfg.num_workers or 0,
            )

        train_loader = clip_loader(splits.train, cfg.sampling, True)
        val_loader = clip_loader(splits.val, "uniform", False) if val_seq else None
    else:
        module = TransferModule(
            head, len(classes), recipe, SequenceObjective(recipe.label_smoothing)
        )
    writer = RunWriter(run_dir, overwrite=True) if info.is_main else None
    if writer:
        writer.config(
            {
                **cfg.to_dict(),
                "resolved": {
                    "task": "sequence",
                    "preprocessing": backbone.preprocessing.to_dict(),
                    "weights_source": backbone.weights_source,
                    "weights_id": backbone.weights_id,
                    "classes": classes,
                    "n_train": len(train_seq),
                    "n_val": len(val_seq),
                },
            }
        )
    artifacts = RunArtifacts(run_dir, monitor="val_acc" if val_loader else "train_acc")
    trainer = build_trainer(
        run_dir,
        epochs=cfg.epochs,
        device=cfg.device if end_to_end else "cpu",  # a head on cached features is tiny
        grad_clip=cfg.grad_clip,
        patience=cfg.patience,
        has_val=val_loader is not None,
        progress=progress,
        deterministic=cfg.deterministic,
        callbacks=[FreezeSchedule(cfg.freeze_epochs, cfg.unfreeze, cfg.bn), artifacts],
    )
    fit(trainer, module, train_loader, val_loader, run_dir, bool(cfg.resume))
    if trainer.global_rank != 0:
        return None
    restore_best(module, run_dir)
    if end_to_end:  # score with the fine-tuned CNN's own per-frame features
        backbone.weights_id = state_fingerprint(backbone.net)
        cf = extract_clip_features(
            cf.items,
            backbone.eval(),
            cache_dir=cfg.cache,
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            device=cfg.device,
        )
        by_id.clear()
        by_id.update({it.identity: seq for it, seq in zip(cf.items, cf.sequences, strict=True)})
    metrics: dict[str, dict] = {}
    for name, items in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        seqs, ys = part(items)
        if seqs:
            pred = clip_logits(head, seqs, frames=cfg.frames).argmax(1)
            metrics[name] = classification_metrics(np.array(ys), pred, classes)
    metrics["selection"] = {
        "best_epoch": artifacts.best_epoch,
        "monitor": artifacts.monitor,
        "epochs_run": trainer.current_epoch,
    }
    metrics["extraction"] = {
        "frames_computed": cf.frames_computed,
        "clips_cached": cf.clips_cached,
        "seconds": round(cf.seconds, 2),
    }
    writer.skipped(skipped_clips)
    writer.notes(notes)
    writer.metrics(metrics)
    writer.model(
        SequenceModel(backbone, head),
        classes,
        {"type": "temporal", **head.config},
        {
            "strategy": cfg.strategy,
            "task": "sequence",
            "frames": cfg.frames,
            "sampling": cfg.sampling,
            "temporal": cfg.temporal,
        },
    )
    return load_run(run_dir)
