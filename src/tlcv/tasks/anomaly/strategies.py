"""The one way an anomaly model transfers: frozen ImageNet features of defect-free images
(feature extraction in its purest form: the network is never trained, nothing is labelled).
`--strategy features`, the default; the method (`--method`) decides what is fitted on them."""

from __future__ import annotations

import random
import time
from functools import partial

import numpy as np

from ...backbones import create_backbone
from ...config import TrainConfig
from ...engine.lifecycle import Outcome, RunLifecycle
from ...errors import TlcvError
from ...features.extract import resolve_device
from ...runs import Run
from ...strategies.common import resolved_record
from . import STRATEGIES
from . import metrics as M
from .data import AnomalySource, discover
from .evaluate import score_items
from .loading import batches_for_fit, score_paths, torch_forward
from .methods import METHODS
from .model import build_model
from .options import parse_strides

DEFAULT_SIZE = 256  # MVTec AD's usual input (PatchCore and PaDiM resize to 256)
CLASSES = ["good", "defective"]


def split_goods(source: AnomalySource, cfg: TrainConfig) -> tuple[list, list, list[str]]:
    """(fitted, held out for the threshold) good images. With a labelled val/ split nothing is
    held out; ``max_images`` thins the fitted ones only, so every budget shares one threshold
    set (the holdout is drawn first, by the split seed)."""
    goods = sorted(source.train, key=lambda i: i.path)
    random.Random(cfg.seed if cfg.split_seed is None else cfg.split_seed).shuffle(goods)
    notes = []
    held: list = []
    if not source.labelled_val and cfg.holdout > 0 and len(goods) >= 2:
        count = min(len(goods) - 1, max(1, round(cfg.holdout * len(goods))))
        held, goods = goods[:count], goods[count:]
    if cfg.max_images is not None and cfg.max_images < len(goods):
        goods = random.Random(cfg.seed).sample(goods, cfg.max_images)
        notes.append(f"--max-images {cfg.max_images}: the model learns from {len(goods)} images")
    return goods, held, notes


def _threshold(scorer, source, held, cfg) -> tuple[float | None, str, list | None, dict]:
    """(threshold, where it came from, the map display range, the holdout's scores)."""
    if source.labelled_val:
        got = scorer([i.path for i in source.val])
        defective = np.array([source.val[i].defective for i in got.indices], dtype=bool)
        _, threshold = M.f1_max(defective, got.scores)
        goods = [m for m, bad in zip(got.maps, defective, strict=True) if not bad]
        span = [float(np.median(goods)), float(np.max(goods))]
        n_good, n_bad = int((~defective).sum()), int(defective.sum())
        stats = {"val": {"n": len(defective), "image_auroc": M.auroc(defective, got.scores)}}
        return (
            threshold,
            (f"F1-optimal on the labelled val/ split ({n_good} good, {n_bad} defective)"),
            span,
            stats,
        )
    if not held:
        return None, "none: no held-out good images (--holdout 0 or one training image)", None, {}
    got = scorer([i.path for i in held])
    if not len(got.scores):
        return None, "none: the held-out good images were unreadable", None, {}
    q = cfg.threshold_quantile
    threshold = float(np.quantile(got.scores, q))
    span = [float(np.median(got.maps)), float(np.max(got.maps))]
    stats = {
        "holdout": {
            "n": len(got.scores),
            "mean": float(got.scores.mean()),
            "max": float(got.scores.max()),
            "quantile": q,
        }
    }
    return (
        threshold,
        (
            f"the {q:g} quantile of {len(got.scores)} held-out good images' scores (no defect "
            "labels used)"
        ),
        span,
        stats,
    )


@STRATEGIES.register("features")
def anomaly_features(cfg: TrainConfig, progress: bool = False) -> Run:
    """Fit the method on frozen features of the good images; set the threshold; score test/."""
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite)
    source = discover(cfg.data, strict=cfg.strict)
    if not source.train:
        raise TlcvError(
            f"{cfg.data} has no defect-free training images",
            path=str(cfg.data),
            hint="give train/good/ + test/<kind>/ (MVTec layout) or a folder of good images",
        )
    size = cfg.image_size or DEFAULT_SIZE
    method = METHODS.get(cfg.method)
    strides = parse_strides(cfg.feature_strides) if cfg.feature_strides else method.strides
    fitted, held, notes = split_goods(source, cfg)
    notes = source.notes + notes
    backbone = create_backbone(cfg.backbone, cfg.weights, None, seed=cfg.seed)
    parts = {"train": fitted, "holdout": held, "val": source.val, "test": source.test}
    resolved = resolved_record(
        backbone,
        "features",
        CLASSES,
        parts,
        task="anomaly",
        method=cfg.method,
        image_size=size,
        strides=list(strides),
    )
    life.begin(cfg.to_dict(), resolved)
    device = resolve_device(cfg.device)
    backbone.net.to(device)
    failed: list = []
    started = time.perf_counter()
    batches = batches_for_fit(
        [i.path for i in fitted], size, device, cfg.batch_size, cfg.num_workers, failed
    )
    options = {"coreset": cfg.coreset, "neighbours": cfg.neighbours, "padim_dims": cfg.padim_dims}
    model, spec, fit_notes = build_model(
        backbone, cfg.method, strides, size, batches, options, cfg.seed
    )
    fit_seconds = time.perf_counter() - started
    scorer = partial(
        score_paths,
        torch_forward(model, device),
        size,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
    )
    threshold, why, span, threshold_stats = _threshold(scorer, source, held, cfg)
    metrics: dict = {
        "fit": {
            "images": len(fitted) - len(failed),
            "seconds": round(fit_seconds, 2),
            **threshold_stats,
        }
    }
    skipped = list(source.missing) + failed
    if source.test:
        result, bad = score_items(
            scorer, source.test, threshold, pixels=source.masks, span=span, out=life.run_dir
        )
        result.pop("per_image", None)  # `tlcv evaluate` writes it: per_image.csv
        metrics["test"] = result
        skipped += bad
        notes += [f"test: {u}" for u in result["undefined"]]
    if threshold is None:
        notes.append(
            "no threshold, so no verdicts: hold out good images (--holdout) or give a "
            "labelled val/ folder"
        )
    info = {
        "strategy": "features",
        "method": cfg.method,
        "image_size": size,
        "threshold": threshold,
        "threshold_source": why,
        "map_range": span,
    }
    if failed:
        notes.append(f"{len(failed)} unreadable training image(s) skipped; see skipped.csv")
    outcome = Outcome(model, CLASSES, spec, info, metrics, notes + fit_notes, skipped)
    return life.finish(outcome)
