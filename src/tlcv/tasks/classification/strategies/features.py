"""Feature extraction: frozen pretrained features into a new classifier (scikit-learn)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from ....backbones import create_backbone, get_backbone_spec
from ....config import TrainConfig
from ....data import ImageItem, discover, make_splits
from ....engine.lifecycle import Outcome, RunLifecycle
from ....errors import TlcvError
from ....evaluation import classification_metrics
from ....features import extract_features
from ....heads import get_classifier
from ....heads.model import ClassifierModel
from ....runs import Run
from ....strategies.common import resolved_config, split_options
from .. import STRATEGIES
from ..calibration import binary_record

log = logging.getLogger("tlcv")


def _select(features: np.ndarray, items: list[ImageItem], wanted: list[ImageItem]):
    """Rows of ``features`` for the ``wanted`` items that were readable, in ``wanted`` order."""
    row = {it.identity: i for i, it in enumerate(items)}
    picked = [it for it in wanted if it.identity in row]
    return features[[row[it.identity] for it in picked]], picked


def score(head: torch.nn.Module, X: np.ndarray, labels: list[str], classes: list[str]) -> dict:
    if len(X) == 0:
        return classification_metrics(np.array([]), np.array([]), classes)
    with torch.no_grad():
        pred = head(torch.from_numpy(X)).argmax(1).numpy()
    lookup = {c: i for i, c in enumerate(classes)}
    return classification_metrics(np.array([lookup[lab] for lab in labels]), pred, classes)


@STRATEGIES.register("features")
def train_features(cfg: TrainConfig, progress: bool = False) -> Run | None:
    return fit_on_features(cfg, progress, strategy="features")


def fit_on_features(cfg: TrainConfig, progress: bool, strategy: str) -> Run | None:
    """Features of a fixed extractor (pretrained CNN or hand-crafted) -> a scikit-learn head."""
    get_backbone_spec(cfg.backbone)  # fail on a typo before scanning thousands of files
    get_classifier(cfg.classifier)
    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite)
    splits = make_splits(discover(cfg.data, strict=cfg.strict), **split_options(cfg))
    backbone = create_backbone(cfg.backbone, cfg.weights, cfg.image_size, seed=cfg.seed)
    life.begin(cfg.to_dict(), resolved_config(backbone, splits, strategy))
    everything = splits.train + splits.val + splits.test
    fs = extract_features(
        everything,
        backbone,
        cache_dir=cfg.cache,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        device=cfg.device,
        strict=cfg.strict,
        progress=progress,
        dist_info=life.join_group(),
    )
    if not life.is_main:
        return None
    notes = list(splits.notes)
    if fs.skipped:
        notes.append(f"{len(fs.skipped)} unreadable image(s) skipped; see skipped.csv")
    X_train, train_items = _select(fs.features, fs.items, splits.train)
    y_train = np.array([it.label for it in train_items])
    classes = sorted(set(y_train.tolist()))
    lost = sorted(set(splits.classes) - set(classes))
    if lost:
        notes.append(f"class(es) with no readable training image, left out: {', '.join(lost)}")
    if len(classes) < 2:
        raise TlcvError(
            "fewer than 2 classes have readable training images",
            hint="see skipped.csv in the run folder",
            path=cfg.data,
        )
    clf = get_classifier(cfg.classifier, seed=cfg.seed).fit(X_train, y_train)
    head = clf.to_head()
    metrics: dict[str, dict] = {}
    val_logits = val_labels = None
    for name, part in splits.named():
        X, picked = _select(fs.features, fs.items, [it for it in part if it.label in classes])
        if picked:
            metrics[name] = score(head, X, [it.label for it in picked], classes)
            if name == "val":
                with torch.no_grad():
                    val_logits = head(torch.from_numpy(X)).numpy()
                val_labels = np.array([classes.index(it.label) for it in picked])
    info = {"strategy": strategy, "classifier": cfg.classifier}
    binary = binary_record(cfg, [str(c) for c in classes], val_logits, val_labels, notes)
    if binary:
        info["binary"] = binary
    metrics["train"]["cv_accuracy"] = clf.cv_score_
    metrics["selection"] = {
        "classifier": cfg.classifier,
        **{k: float(v) for k, v in clf.best_params_.items()},
        "chosen_by": "stratified CV on the training split"
        if clf.cv_score_ is not None
        else "default (too few images for CV)",
    }
    return life.finish(
        Outcome(
            ClassifierModel(backbone, head),
            [str(c) for c in classes],
            clf.head_spec(),
            info,
            metrics,
            notes,
            splits.missing + fs.skipped,
        )
    )
