"""``tlcv adapt`` for segmentation: labelled source scenes + unlabelled target images -> an
adapted segmentation run (the same folder `tlcv train --task segmentation` writes).

The network is the task's encoder + decoder, from the pretrained encoder or from a trained
run (``--init``, e.g. a source-only run). Each step segments a source batch (its pixel loss)
and, when a method needs it, a target batch through the same network; the methods
(adaptation/methods: advent, output-adversarial, fda, self-training, adabn) add their terms.
The epoch is chosen by a label-free validator over sampled pixels (adapt_objective.py), the
negative-transfer guard compares the target predictions with the ``--init`` model's
(adapt_guard.py), and target masks, when the target has them, are read once, for the score.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import torch

from ...adaptation.methods import build_methods, check_methods, parse_methods
from ...adaptation.methods.adabn import recalibrate_batchnorm
from ...adaptation.search import search_trade_off
from ...adaptation.validators import VALIDATORS, metric_name
from ...backbones import create_backbone, get_backbone_spec, state_fingerprint
from ...config import AdaptConfig
from ...data.select import matching
from ...engine import Recipe, TransferModule
from ...engine.callbacks import FreezeSchedule
from ...engine.lifecycle import Outcome, RunLifecycle
from ...errors import TlcvError
from ...features.extract import resolve_device
from ...runs import Run, load_run
from ...strategies.common import resolved_record
from .adapt_objective import DenseAdaptObjective, image_loader, paired_pair_loader
from .data import SegItem, SegSource, discover_segmentation, is_segmentation_data, split_pairs
from .masks import IGNORE
from .model import build_model
from .strategies import DEFAULT_SIZE, pixel_counts


@dataclass
class SegDomains:
    """The source pairs (split), the target images (masks set aside) and the class table."""

    source: SegSource
    train: list[SegItem]
    val: list[SegItem]
    target: list[SegItem]  # mask None: what training and validation see
    target_scored: list[SegItem]  # with their masks, for the final score only ([] if none)
    notes: list[str]


def monitor_of(select: str) -> tuple[str | None, str]:
    """The history column ``--select`` keeps the best epoch of (source-val: source mIoU)."""
    if select == "last":
        return None, "max"
    if select == "source-val":
        return "val_miou", "max"
    VALIDATORS.get(select)
    return metric_name(select), "max"


def adapt(cfg: AdaptConfig, progress: bool = False) -> Run | None:
    cfg = replace(cfg, task="segmentation")  # recorded: the run reloads as a segmentation run
    _check(cfg)
    if cfg.trade_off_grid:
        return search_trade_off(cfg, progress, adapt, monitor_of(cfg.select)[0] or "")
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite, resume=bool(cfg.resume))
    domains = read_domains(cfg)
    classes, fmt = domains.source.classes, domains.source.format
    notes = list(domains.notes)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model, head_spec, reference = _start_model(cfg, classes, notes)
    size = int(head_spec["image_size"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        methods = build_methods(cfg.method, 0, len(classes), cfg.trade_off, outputs="pixel")
    objective = DenseAdaptObjective(methods, len(classes), loss=cfg.loss, seed=cfg.seed,
                                    class_weights=_class_weights(cfg, domains))  # fmt: skip
    module = TransferModule(model, len(classes), Recipe.from_config(cfg), objective,
                            ignore_index=IGNORE)  # fmt: skip
    batches = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    train_loader = paired_pair_loader(domains.train, domains.target, fmt, size, seed=cfg.seed,
                                      augment=cfg.augment, flips=cfg.flips, **batches)  # fmt: skip
    target_eval = domains.target_scored if cfg.oracle and domains.target_scored else domains.target
    val_loaders = [image_loader(its, fmt, size, **batches) for its in (domains.val, target_eval)]
    parts = {"train": domains.train, "val": domains.val, "target": domains.target}
    life.begin(
        cfg.to_dict(),
        resolved_record(model.backbone, "adapt", classes, parts, task="segmentation",
                        image_size=size, taps=head_spec["taps"],
                        methods=parse_methods(cfg.method), init=cfg.init),
    )  # fmt: skip
    monitor, mode = monitor_of(cfg.select)
    frozen = cfg.mode == "frozen"  # the encoder keeps its weights and BN statistics
    # From a trained run (--init) the encoder's batch-norm statistics stay the source's: a
    # batch of source and target crops would otherwise replace them with a mix of both
    # domains, moving every prediction at once (AdaBN is the method that changes them).
    bn = "frozen" if cfg.init else "train"
    fitted = life.train(
        module, train_loader, val_loaders, monitor=monitor, mode=mode, epochs=cfg.epochs,
        device=cfg.device, precision=cfg.precision, patience=None,
        progress=progress,
        callbacks=[FreezeSchedule(cfg.epochs + 1 if frozen else 0, "all", bn)],
    )  # fmt: skip
    if fitted is None:  # torchrun ranks > 0
        return None
    if fitted.restored_best:
        notes.append(f"weights of epoch {fitted.artifacts.best_epoch} (best {monitor}, no "
                     "target labels used) are the run's model")  # fmt: skip
    model.eval()
    if any(m.recalibrates_bn for m in methods):
        loader = image_loader(domains.target, fmt, size, **batches)
        n_bn = _recalibrate(model, loader, resolve_device(cfg.device))
        notes.append(f"AdaBN: statistics of {n_bn} batch-norm layers re-estimated on the target")
    model.backbone.weights_id = state_fingerprint(model.backbone.net)
    from .adapt_guard import assess, score

    health, kept = assess(cfg, model, reference, domains, size)
    if kept is not model:
        notes.append(
            "--fallback source-only: the check fired, so the run keeps the --init model; the "
            "adapted model is not saved"
        )
    metrics = score(cfg, kept, reference, domains, size, life.run_dir)
    metrics.update(health=health, selection=fitted.selection())
    oracle = _oracle(fitted.artifacts.history) if cfg.oracle else None
    if oracle:
        metrics["oracle"] = oracle
    skipped = domains.source.missing + sorted(set(module.skipped))
    info = {"strategy": "adapt", "method": cfg.method, "decoder": head_spec["decoder"],
            "image_size": size, "mask_format": fmt.to_dict()}  # fmt: skip
    return life.finish(Outcome(kept, classes, head_spec, info, metrics, notes, skipped))


def _check(cfg: AdaptConfig) -> None:
    cfg.validate()
    check_methods(cfg.method, outputs="pixel")
    if cfg.init is None:
        get_backbone_spec(cfg.backbone)
    if cfg.epochs < 1 or cfg.lr <= 0 or cfg.batch_size < 2:
        raise TlcvError("--epochs and --lr must be positive and --batch-size at least 2")
    if not 0 < cfg.val_fraction < 1:
        raise TlcvError("segmentation adaptation holds out source images: 0 < --val-fraction < 1")


def read_domains(cfg: AdaptConfig) -> SegDomains:
    """Source pairs whose names match ``--source-include`` (every split folder pooled, then a
    held-out share for selection); target images matching ``--target-include``."""
    source = discover_segmentation(cfg.source, strict=cfg.strict, ignore_index=cfg.ignore_index)
    pool = source.all_items()
    pool = [pool[i] for i in matching(pool, cfg.source_include, "source")]
    chosen = SegSource(source.root, {"all": pool}, source.format, source.notes, source.missing)
    parts, split_notes = split_pairs(chosen, val_fraction=cfg.val_fraction, test_fraction=0.0,
                                     seed=cfg.seed)  # fmt: skip
    target_items = _target_items(cfg, source)
    target = [replace(it, mask=None) for it in target_items]
    scored = [it for it in target_items if it.mask is not None]
    notes = source.notes + [
        f"source: {len(parts['train'])} training and {len(parts['val'])} held-out images "
        f"(selection: {cfg.select}); target: {len(target)} images, their masks "
        + ("read only for the final score" if scored else "absent")
    ]
    return SegDomains(chosen, parts["train"], parts["val"], target, scored, notes + split_notes)


def _target_items(cfg: AdaptConfig, source: SegSource) -> list[SegItem]:
    """Target pairs (same class table as the source), or plain images when it has no masks."""
    root = Path(cfg.target).expanduser()
    if not root.exists():
        raise TlcvError(f"{root} does not exist", path=str(root), hint="check the --target path")
    if not is_segmentation_data(root):  # images only: nothing to score, nothing to check
        from ...data.decode import IMAGE_SUFFIXES, file_identity

        folder = root / "images" if (root / "images").is_dir() else root
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        items = [SegItem(str(p), None, file_identity(p)) for p in files]
    else:  # pairs: a bad mask is an error here (silently dropping them would lose the score)
        found = discover_segmentation(root, strict=cfg.strict, ignore_index=cfg.ignore_index)
        if found.classes != source.classes:
            raise TlcvError(
                f"the target's classes differ from the source's ({len(found.classes)} vs "
                f"{len(source.classes)})",
                path=str(root),
                hint="give both the same classes.txt, or a target of images only",
            )
        items = found.all_items()
    if not items:
        raise TlcvError(f"{root} holds no target images", path=str(root))
    return [items[i] for i in matching(items, cfg.target_include, "target")]


def _start_model(cfg: AdaptConfig, classes: list[str], notes: list[str]):
    """(model, head spec, reference): the pretrained encoder + a new decoder, or a copy of the
    ``--init`` run's model, which stays untouched as the guard's source-only reference."""
    if cfg.init is None:
        backbone = create_backbone(cfg.backbone, cfg.weights, None, seed=cfg.seed)
        model, spec = build_model(backbone, cfg.decoder, len(classes),
                                  cfg.image_size or DEFAULT_SIZE, seed=cfg.seed)  # fmt: skip
        return model, spec, None
    run = load_run(cfg.init)
    if run.info.get("task") != "segmentation":
        raise TlcvError(f"--init {cfg.init} is not a segmentation run", path=str(cfg.init))
    if list(run.classes) != list(classes):
        raise TlcvError(
            f"--init {cfg.init} was trained on other classes than the source's",
            path=str(cfg.init),
            hint="start from a run trained on the same class table",
        )
    reference = run.load_model().eval()
    notes.append(f"started from {cfg.init} (the guard's source-only reference)")
    # loaded twice, not deep-copied: the pyramid's forward hooks belong to one network each
    return run.load_model().train(), dict(run.info["head"]), reference


def _class_weights(cfg: AdaptConfig, domains: SegDomains):
    if cfg.class_weighting != "median-frequency":
        return None
    from .objective import median_frequency_weights

    counts = pixel_counts(domains.train, domains.source.format, len(domains.source.classes))
    return median_frequency_weights(counts)


def _recalibrate(model, loader, device) -> int:
    """AdaBN: every BN layer's statistics re-estimated on the target images."""
    from ...data import normalize

    model.to(device)
    prep = model.backbone.preprocessing

    def forward(batch):
        if len(batch[0]):
            model(normalize(batch[0], prep, device, channels_last=True))

    n = recalibrate_batchnorm(model, loader, forward)
    model.cpu()
    return n


def _oracle(history: list[dict]) -> dict | None:
    """The best epoch by target mIoU (ORACLE: chosen on target labels, never used)."""
    rows = [r for r in history if r.get("oracle_target_miou") is not None]
    if not rows:
        return None
    best = max(rows, key=lambda r: float(r["oracle_target_miou"]))
    return {
        "label": "ORACLE: epoch chosen on target masks; not an honest estimate",
        "best_epoch": int(best["epoch"]),
        "target_miou": float(best["oracle_target_miou"]),
    }
