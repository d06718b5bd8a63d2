"""``tlcv adapt``: labelled source + unlabelled target -> an adapted run folder.

Frozen mode adapts a bottleneck + classifier on cached backbone features (minutes on a CPU);
full mode trains the backbone too, at the reduced learning rate of fine-tuning. The checkpoint
is chosen without target labels, by a validator (adaptation/validators: the batch nuclear-norm
of the target predictions by default) or as the last epoch; target labels, when the target
has them, are read once, for the final evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import lightning as L
import numpy as np
import torch

from ..backbones import create_backbone, get_backbone_spec, state_fingerprint
from ..config import AdaptConfig
from ..data import image_loader, normalize
from ..data.splits import stratified_split
from ..engine import Recipe, RunArtifacts, TransferModule
from ..engine.data import LabelledImages, hold_in_memory, loader_workers
from ..engine.lifecycle import Outcome, RunLifecycle
from ..errors import TlcvError
from ..evaluation import classification_metrics, plot_confusion
from ..features import extract_features
from ..features.extract import resolve_device
from ..heads import BottleneckHead
from ..heads.model import ClassifierModel
from ..io import write_text
from ..runs import Run, rows_to_csv
from .analysis import plot_domains, proxy_a_distance
from .domains import Domains, read_domains
from .guard import assess
from .methods import build_methods, parse_methods
from .methods.adabn import recalibrate_batchnorm
from .objective import AdaptObjective, FeatureRows, eval_loader, paired_loader
from .search import search_trade_off
from .validators import VALIDATORS, metric_name


def monitor_of(select: str) -> tuple[str | None, str]:
    """The history column (and direction) that ``--select`` keeps the best epoch of."""
    if select == "last":
        return None, "max"
    if select == "source-val":
        return "val_acc", "max"
    VALIDATORS.get(select)  # unknown: one line listing the validators
    return metric_name(select), "max"


def check_options(cfg: AdaptConfig) -> None:
    get_backbone_spec(cfg.backbone)
    parse_methods(cfg.method)
    cfg.validate()  # the choices declared on AdaptConfig's fields
    if cfg.epochs < 1 or cfg.lr <= 0 or cfg.batch_size < 2:
        raise TlcvError("--epochs and --lr must be positive and --batch-size at least 2")
    if not 0 < cfg.val_fraction < 1 and cfg.select in ("source-val", "dev"):
        raise TlcvError(
            f"--select {cfg.select} needs a held-out source share: 0 < --val-fraction < 1"
        )


def _weights_for(cfg: AdaptConfig, notes: list[str]) -> str:
    spec = get_backbone_spec(cfg.backbone)
    if cfg.weights == "imagenet" and not spec.weights:
        notes.append(f"{cfg.backbone} has no pretrained weights: trained from scratch")
        weights = "none"
    else:
        weights = cfg.weights
    if weights == "none" and cfg.mode == "frozen":
        raise TlcvError(
            f"--mode frozen with a randomly initialised {cfg.backbone} learns nothing useful",
            hint="use --mode full (e.g. lenet on digits), or pretrained --weights",
        )
    return weights


class _Features:
    """Backbone features of item lists through the cache (frozen mode trains on these).

    Rows already computed for the same weights are served from memory: the final evaluation
    of a frozen run asks again for features that training already holds.
    """

    def __init__(self, cfg: AdaptConfig, progress: bool):
        self.cfg, self.progress = cfg, progress
        self.skipped: list[tuple[str, str]] = []
        self._rows: dict[tuple[str, str], tuple[np.ndarray, object]] = {}

    def __call__(self, backbone, items) -> tuple[np.ndarray, list]:
        keys = [(backbone.weights_id, it.identity) for it in items]
        if items and all(k in self._rows for k in keys):
            return np.stack([self._rows[k][0] for k in keys]), [self._rows[k][1] for k in keys]
        fs = extract_features(
            items,
            backbone,
            cache_dir=self.cfg.cache,
            batch_size=64,
            num_workers=self.cfg.num_workers,
            device=self.cfg.device,
            strict=self.cfg.strict,
            progress=self.progress,
        )
        self.skipped += fs.skipped
        for row, item in zip(fs.features, fs.items, strict=True):
            self._rows[(backbone.weights_id, item.identity)] = (row, item)
        return fs.features, fs.items


def adapt(cfg: AdaptConfig, progress: bool = False) -> Run | None:
    check_options(cfg)
    if cfg.trade_off_grid:
        return search_trade_off(cfg, progress, adapt, monitor_of(cfg.select)[0] or "")
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=bool(cfg.resume))
    domains = read_domains(cfg.source, cfg.target, strict=cfg.strict)
    notes = list(domains.notes)
    weights = _weights_for(cfg, notes)
    classes = domains.classes
    lookup = {c: i for i, c in enumerate(classes)}
    train_items, val_items = stratified_split(domains.source, cfg.val_fraction, cfg.seed)
    notes.append(
        f"source: {len(train_items)} training and {len(val_items)} held-out images "
        f"(selection: {cfg.select}); target: {len(domains.target)} unlabelled images"
    )
    if weights == "none" and cfg.backbone_lr_ratio != 1.0:
        notes.append("random initialisation: every layer learns at --lr (nothing to preserve)")
        cfg = replace(cfg, backbone_lr_ratio=1.0)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    backbone = create_backbone(cfg.backbone, weights, cfg.image_size, seed=cfg.seed)
    frozen = cfg.mode == "frozen"
    if not frozen:  # decoded once for training, its validation and the features below
        everything = train_items + val_items + domains.target
        hold_in_memory(everything, backbone.preprocessing, cfg.memory_cache, cfg.num_workers)
    features = _Features(cfg, progress)

    # Backbone features before adaptation: the frozen mode's training data, and the "before"
    # picture of both modes (a capped sample in full mode, where they are only for analysis).
    cap = None if frozen else 600
    before_s, src_kept = features(
        backbone, train_items + val_items if frozen else train_items[:cap]
    )
    before_t, tgt_kept = features(backbone, domains.target if frozen else domains.target[:cap])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = BottleneckHead(backbone.feature_dim, cfg.bottleneck, len(classes), cfg.dropout)
        methods = build_methods(cfg.method, cfg.bottleneck, len(classes), cfg.trade_off)
    objective = AdaptObjective(
        methods, len(classes), frozen=frozen, label_smoothing=cfg.label_smoothing, seed=cfg.seed
    )
    model = ClassifierModel(backbone, head)
    recipe = Recipe.from_config(cfg)
    module = TransferModule(head if frozen else model, len(classes), recipe, objective)
    train_loader, val_loaders = _loaders(
        cfg,
        domains,
        backbone,
        before_s,
        src_kept,
        before_t,
        tgt_kept,
        train_items,
        val_items,
        lookup,
        frozen,
    )
    life.begin(
        cfg.to_dict(),
        {
            "strategy": "adapt",
            "methods": parse_methods(cfg.method),
            "weights": weights,
            "preprocessing": backbone.preprocessing.to_dict(),
            "weights_source": backbone.weights_source,
            "classes": classes,
            "n_source_train": len(train_items),
            "n_source_val": len(val_items),
            "n_target": len(domains.target),
        },
    )
    monitor, mode = monitor_of(cfg.select)
    trained = life.train(
        module,
        train_loader,
        val_loaders,
        monitor=monitor,
        mode=mode,
        epochs=cfg.epochs,
        device=cfg.device,
        patience=None,
        progress=progress,
    )
    if trained is None:
        return None
    if trained.restored_best:
        notes.append(
            f"weights of epoch {trained.artifacts.best_epoch} (best {monitor}, no target labels "
            "used) are the run's model"
        )
    model.eval()
    if any(m.recalibrates_bn for m in methods):
        n_bn = _adabn(model, domains, cfg)
        notes.append(f"AdaBN: statistics of {n_bn} batch-norm layers re-estimated on the target")
    backbone.weights_id = state_fingerprint(backbone.net)
    result = _Trained(
        model, (before_s, before_t), (src_kept, tgt_kept), trained.artifacts, trained.epochs_run,
        notes,
    )  # fmt: skip
    skipped = module.skipped + features.skipped + domains.skipped
    return _finish(cfg, life, domains, features, (train_items, val_items), result, skipped)


@dataclass
class _Trained:
    """What training leaves for the final evaluation and the run folder."""

    model: ClassifierModel
    before: tuple[np.ndarray, np.ndarray]  # backbone features at the start (source, target)
    before_items: tuple[list, list]  # the items of those rows
    artifacts: RunArtifacts
    epochs_run: int
    notes: list[str]


def _adabn(model: ClassifierModel, domains: Domains, cfg: AdaptConfig) -> int:
    """Re-estimate every BN layer (backbone and bottleneck) on target images."""
    device = resolve_device(cfg.device)
    prep = model.backbone.preprocessing
    model.to(device)
    loader = image_loader(domains.target, prep, cfg.batch_size * 2, cfg.num_workers)

    def forward(batch):
        if batch.indices:
            model(normalize(batch.images, prep, device, channels_last=True))

    n = recalibrate_batchnorm(model, loader, forward)
    model.cpu()
    return n


@torch.no_grad()
def _head_outputs(head: BottleneckHead, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(feats).float()
    bottleneck = head.features(x)
    return bottleneck.numpy(), head.classifier(bottleneck).numpy()


def _finish(cfg, life, domains, features, source_split, trained, skipped) -> Run:
    model, before, artifacts, notes = (
        trained.model,
        trained.before,
        trained.artifacts,
        trained.notes,
    )
    train_items, val_items = source_split
    run_dir = life.run_dir
    head = model.head.eval()
    model.backbone.cpu()
    classes = domains.classes
    lookup = {c: i for i, c in enumerate(classes)}
    metrics: dict[str, dict] = {}
    # Source: the held-out split (what selected the checkpoint); a sample of training images
    # joins it for the domain pictures.
    val_feats, val_kept = features(model.backbone, val_items)
    sample = train_items[: max(0, 1000 - len(val_items))]
    train_feats, _ = features(model.backbone, sample)
    f_val, logits_val = _head_outputs(head, val_feats)
    metrics["source"] = classification_metrics(
        np.array([lookup[it.label] for it in val_kept]), logits_val.argmax(1), classes
    )
    tgt_feats, tgt_kept = features(model.backbone, domains.target)
    f_tgt, logits_tgt = _head_outputs(head, tgt_feats)
    f_train, _ = _head_outputs(head, train_feats)
    pred_t = logits_tgt.argmax(1)
    health = assess(cfg, trained, source_split, tgt_kept, logits_tgt, classes, features, domains)
    metrics["health"] = health.metrics
    notes.extend(f"WARNING: {reason}" for reason in health.reasons)
    if health.fallback is not None:
        model, pred_t = health.fallback.model, health.fallback.target_pred
        metrics["source"] = health.fallback.source_metrics
        notes.append(health.fallback.note)
    if domains.target_labels is not None:
        # The one place target labels are read: the final evaluation of the chosen model.
        truth = {
            it.identity: lab for it, lab in zip(domains.target, domains.target_labels, strict=True)
        }
        y_t = np.array([lookup[truth[it.identity]] for it in tgt_kept])
        metrics["target"] = classification_metrics(y_t, pred_t, classes)
        ref = health.reference_pred
        if ref is not None and (ref >= 0).any():  # scored after the check, never used by it
            scored = ref >= 0
            metrics["target_source_only"] = {
                "label": "the source-only reference the check compared against, on target "
                "labels (read here, after the check)",
                "accuracy": float(np.mean(ref[scored] == y_t[scored])),
                "n": int(scored.sum()),
            }
        write_text(run_dir / "target_per_class.csv", rows_to_csv(metrics["target"]["per_class"]))
        plot_confusion(
            metrics["target"]["confusion"],
            classes,
            run_dir / "target_confusion.png",
            title=f"target: accuracy {metrics['target']['accuracy']:.3f}",
        )
    write_text(
        run_dir / "target_predictions.csv",
        rows_to_csv(
            [
                {"path": it.path, "predicted": classes[int(p)]}
                for it, p in zip(tgt_kept, pred_t, strict=True)
            ]
        ),
    )
    after_s = np.concatenate([f_train, f_val])
    metrics["domain_gap"] = {
        "proxy_a_distance_before": proxy_a_distance(*before, seed=cfg.seed),
        "proxy_a_distance_after": proxy_a_distance(after_s, f_tgt, seed=cfg.seed),
        "before": "backbone features at the start",
        "after": "bottleneck features of the chosen model",
    }
    if cfg.plots:
        plot_domains(
            {
                "before: backbone features": before,
                f"after ({cfg.method}): bottleneck features": (after_s, f_tgt),
            },
            run_dir / "tsne.png",
            seed=cfg.seed,
        )
    metrics["selection"] = {
        "criterion": cfg.select,
        "best_epoch": artifacts.best_epoch,
        "epochs_run": trained.epochs_run,
        "target_labels_used": False,
    }
    oracle = [r for r in artifacts.history if r.get("oracle_target_acc") is not None]
    if oracle:
        best = max(oracle, key=lambda r: r["oracle_target_acc"])
        metrics["oracle"] = {
            "label": "ORACLE: epoch chosen on target labels; not an honest estimate",
            "best_epoch": best["epoch"],
            "target_accuracy": best["oracle_target_acc"],
        }
    if skipped:
        notes.append("unreadable images were skipped; see skipped.csv")
    head_spec = {
        "type": "bottleneck",
        "in_features": model.backbone.feature_dim,
        "width": cfg.bottleneck,
        "num_classes": len(classes),
        "dropout": cfg.dropout,
    }
    kept = "source-only (fallback)" if health.fallback is not None else cfg.method
    return life.finish(
        Outcome(
            model,
            classes,
            health.fallback.head_spec if health.fallback is not None else head_spec,
            {"strategy": "adapt", "method": cfg.method, "mode": cfg.mode, "kept": kept},
            metrics,
            notes,
            sorted(set(skipped)),
        )
    )


def _loaders(
    cfg,
    domains,
    backbone,
    feats_s,
    src_kept,
    feats_t,
    tgt_kept,
    train_items,
    val_items,
    lookup,
    frozen,
):
    oracle_labels = (
        [lookup[label] for label in domains.target_labels]
        if cfg.oracle and domains.target_labels is not None
        else None
    )
    if frozen:
        workers = 0
        index = {it.identity: i for i, it in enumerate(src_kept)}
        rows_tr = [index[it.identity] for it in train_items if it.identity in index]
        rows_va = [index[it.identity] for it in val_items if it.identity in index]
        feats = torch.from_numpy(feats_s)
        source = FeatureRows(feats[rows_tr], [lookup[src_kept[i].label] for i in rows_tr])
        val = FeatureRows(feats[rows_va], [lookup[src_kept[i].label] for i in rows_va])
        kept_t = {it.identity for it in tgt_kept}
        target = FeatureRows(torch.from_numpy(feats_t))
        target_eval = FeatureRows(
            torch.from_numpy(feats_t),
            None
            if oracle_labels is None
            else [
                lab
                for it, lab in zip(domains.target, oracle_labels, strict=True)
                if it.identity in kept_t
            ],
        )
    else:
        prep, seed = backbone.preprocessing, cfg.seed
        everything = train_items + val_items + domains.target
        held = hold_in_memory(everything, prep, cfg.memory_cache, cfg.num_workers)
        workers = loader_workers(len(everything), held, cfg.num_workers)
        classes = list(lookup)
        source = LabelledImages(train_items, classes, prep, cfg.augment, seed)
        target = LabelledImages(domains.target, classes, prep, cfg.augment, seed + 1)
        val = LabelledImages(val_items, classes, prep, "none", seed)
        target_items = domains.target
        if oracle_labels is not None:
            target_items = [
                replace(it, label=label)
                for it, label in zip(domains.target, domains.target_labels, strict=True)
            ]
        target_eval = LabelledImages(target_items, classes, prep, "none", seed)
    train = paired_loader(
        source, target, batch_size=cfg.batch_size, seed=cfg.seed, num_workers=workers
    )
    evals = [
        eval_loader(ds, batch_size=256 if frozen else 64, num_workers=workers)
        for ds in (val, target_eval)
    ]
    if len(val) == 0:
        raise TlcvError(
            "the source is too small to hold out a validation split",
            hint="add source images, or use --select last / entropy",
        )
    return train, evals
