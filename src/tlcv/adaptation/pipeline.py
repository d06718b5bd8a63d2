"""``tlcv adapt``: labelled source + unlabelled target -> an adapted run folder.

One context is built once (context.py: domains, splits, start model, its features), then
prepare -> train -> check -> write: training adapts the model, the negative-transfer guard
(guard.py) checks it against the source-only reference, outcome.py scores and writes the run.

Frozen mode adapts a bottleneck + classifier on cached backbone features (minutes on a CPU);
full mode trains the backbone too, at the reduced learning rate of fine-tuning. The checkpoint
is chosen without target labels, by a validator (adaptation/validators: the batch nuclear-norm
of the target predictions by default) or as the last epoch; target labels, when the target
has them, are read once, for the final evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..backbones import state_fingerprint
from ..config import AdaptConfig
from ..data import image_loader, normalize
from ..engine import Recipe, RunArtifacts, TransferModule
from ..engine.data import LabelledImages, hold_in_memory, loader_workers
from ..engine.lifecycle import RunLifecycle
from ..errors import TlcvError
from ..features.extract import resolve_device
from ..heads.model import ClassifierModel
from ..runs import Run
from .context import AdaptContext, check_options, prepare
from .guard import assess
from .methods import parse_methods
from .methods.adabn import recalibrate_batchnorm
from .objective import AdaptObjective, FeatureRows, eval_loader, paired_loader
from .outcome import head_outputs, write
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


@dataclass
class Trained:
    """The adapted model and how its training went."""

    model: ClassifierModel
    artifacts: RunArtifacts
    epochs_run: int


def adapt(cfg: AdaptConfig, progress: bool = False) -> Run | None:
    """`tlcv adapt`: the task asked for, or the one the source data is, adapts: with its own
    adapt.py (``tasks/<name>/adapt.py``), or here when it is the classifier."""
    from ..tasks import DEFAULT_TASK, task_for_data

    task = task_for_data(cfg.source, cfg.task)
    own = task.own("adapt", "adapt")
    if own is not None:
        return own(cfg, progress)
    if task.name != DEFAULT_TASK:
        raise TlcvError(f"tlcv adapt does not adapt {task.name} models yet")
    return adapt_classifier(cfg, progress)


def adapt_classifier(cfg: AdaptConfig, progress: bool = False) -> Run | None:
    check_options(cfg)
    if cfg.trade_off_grid:
        return search_trade_off(cfg, progress, adapt_classifier, monitor_of(cfg.select)[0] or "")
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=bool(cfg.resume))
    cfg, context = prepare(cfg, progress)
    trained, skipped = train(context, life, progress)
    if trained is None:  # torchrun ranks > 0
        return None
    model = trained.model
    tgt_feats, tgt_kept = context.features(model.backbone, context.domains.target)
    _, logits_tgt = head_outputs(model.head.eval(), tgt_feats)
    health = assess(context, model, tgt_kept, logits_tgt)
    return write(context, life, trained, health, skipped)


def train(context: AdaptContext, life: RunLifecycle, progress: bool):
    """The adapted model (None on torchrun ranks > 0) and the items training skipped."""
    cfg, frozen, classes = context.cfg, context.frozen, context.classes
    objective = AdaptObjective(
        context.methods, len(classes), frozen=frozen, label_smoothing=cfg.label_smoothing,
        seed=cfg.seed,
    )  # fmt: skip
    model = ClassifierModel(context.backbone, context.head)
    module = TransferModule(
        context.head if frozen else model, len(classes), Recipe.from_config(cfg), objective
    )
    train_loader, val_loaders = _loaders(context)
    life.begin(
        cfg.to_dict(),
        {
            "strategy": "adapt",
            "methods": parse_methods(cfg.method),
            "weights": context.weights,
            "preprocessing": context.backbone.preprocessing.to_dict(),
            "weights_source": context.backbone.weights_source,
            "classes": classes,
            "n_source_train": len(context.train_items),
            "n_source_val": len(context.val_items),
            "n_target": len(context.domains.target),
        },
    )
    monitor, mode = monitor_of(cfg.select)
    fitted = life.train(
        module, train_loader, val_loaders, monitor=monitor, mode=mode, epochs=cfg.epochs,
        device=cfg.device, precision=cfg.precision, patience=None,
        progress=progress,
    )  # fmt: skip
    skipped = module.skipped + context.features.skipped + context.domains.skipped
    if fitted is None:
        return None, skipped
    if fitted.restored_best:
        context.notes.append(
            f"weights of epoch {fitted.artifacts.best_epoch} (best {monitor}, no target labels "
            "used) are the run's model"
        )
    model.eval()
    if any(m.recalibrates_bn for m in context.methods):
        n_bn = _adabn(model, context)
        context.notes.append(
            f"AdaBN: statistics of {n_bn} batch-norm layers re-estimated on the target"
        )
    context.backbone.weights_id = state_fingerprint(context.backbone.net)
    return Trained(model, fitted.artifacts, fitted.epochs_run), skipped


def _adabn(model: ClassifierModel, context: AdaptContext) -> int:
    """Re-estimate every BN layer (backbone and bottleneck) on target images."""
    cfg, domains = context.cfg, context.domains
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


def _loaders(context: AdaptContext):
    """The paired source + target training loader, and the source-val / target loaders."""
    cfg, domains, frozen, lookup = context.cfg, context.domains, context.frozen, context.lookup
    feats_s, feats_t = context.before
    src_kept, tgt_kept = context.before_items
    train_items, val_items = context.train_items, context.val_items
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
        prep, seed = context.backbone.preprocessing, cfg.seed
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
