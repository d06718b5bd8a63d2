"""The negative-transfer guard run at the end of every adaptation.

A source-only reference costs seconds: a logistic-regression probe (what
`tlcv train --strategy features` fits, at a fixed regularisation) on the starting backbone's
features of the source training split, which the run already holds. Its target predictions
and the adapted model's go to ``health.check``, with the starting features of the target and
of the labelled source for the arbiter; when ``health.verdict`` finds the adaptation
probably hurt, the run says so
(notes, metrics.json, console, report) and, with ``--fallback source-only`` (the default),
keeps the reference instead. No target label is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..evaluation import classification_metrics
from ..heads import get_classifier
from ..heads.model import ClassifierModel
from .health import check, verdict


@dataclass
class Fallback:
    """The source-only model the run keeps instead of the adapted one."""

    model: ClassifierModel
    target_pred: np.ndarray
    source_metrics: dict
    head_spec: dict
    note: str


@dataclass
class Assessment:
    metrics: dict
    reasons: list[str]
    fallback: Fallback | None = None
    # The source-only reference's target predictions, aligned with the adapted ones (-1: none),
    # for the final evaluation to score next to the adapted model's.
    reference_pred: np.ndarray | None = None


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(logits, np.float32)), 1).numpy()


@torch.no_grad()
def _probs(head: torch.nn.Module, feats: np.ndarray) -> np.ndarray:
    return _softmax(head(torch.from_numpy(feats).float()).numpy())


def assess(context, model, tgt_kept: list, logits_tgt: np.ndarray) -> Assessment:
    """Health of the adapted ``model``'s target predictions against the source-only
    reference fitted on the start model's features (``context``: adaptation/context.py)."""
    cfg, classes, train_items = context.cfg, context.classes, context.train_items
    lookup = {c: i for i, c in enumerate(classes)}
    source_labels = np.array([lookup[it.label] for it in train_items])
    probs = _softmax(logits_tgt)
    if context.start.weights_source == "random":  # no pretrained features to build a reference on
        health = check(probs, source_labels, len(classes))
        health["source_only"] = None
        health["reference"] = "none: the backbone started from random weights"
        return Assessment({**health, "fired": False, "reasons": []}, [])
    before_s, before_t = context.before
    src_kept, tgt_before = context.before_items
    train_ids = {it.identity for it in train_items}
    rows = [i for i, it in enumerate(src_kept) if it.identity in train_ids]
    y = np.array([src_kept[i].label for i in rows])
    if sorted(set(y.tolist())) != list(classes):
        health = check(probs, source_labels, len(classes))
        health["reference"] = "none: a class has no readable source training image"
        return Assessment({**health, "fired": False, "reasons": []}, [])
    # One fit at the middle of the regularisation grid: cross-validating it cost more than the
    # adaptation itself (a check should take seconds).
    clf = get_classifier("logreg", seed=cfg.seed, cv_folds=1).fit(before_s[rows], y)
    head = clf.to_head().eval()
    row_of = {it.identity: i for i, it in enumerate(tgt_before)}
    common = [i for i, it in enumerate(tgt_kept) if it.identity in row_of]
    start_t = before_t[[row_of[tgt_kept[i].identity] for i in common]]
    ref = _probs(head, start_t)
    reference_pred = np.full(len(tgt_kept), -1)
    reference_pred[common] = ref.argmax(1)
    # The arbiter's voters: the labelled source rows the reference learnt from, in the same
    # starting feature space as the target rows.
    voters = (start_t, before_s[rows], np.array([lookup[label] for label in y]))
    health = check(probs[common], source_labels, len(classes), ref, voters)
    health["reference"] = "logistic regression on the starting backbone's source features"
    reasons = verdict(health, classes)
    metrics = {**health, "fired": bool(reasons), "reasons": reasons, "fallback": cfg.fallback}
    if not reasons or cfg.fallback != "source-only":
        return Assessment(metrics, reasons, reference_pred=reference_pred)
    return Assessment(
        {**metrics, "kept": "source-only"},
        reasons,
        _fallback(context, clf, head, tgt_kept),
        reference_pred,
    )


def _fallback(context, clf, head, tgt_kept: list) -> Fallback:
    """The start backbone + the reference head, scored like the adapted model would be."""
    start, classes, features = context.start, context.classes, context.features
    lookup = context.lookup
    model = ClassifierModel(start, head).eval()
    val_feats, val_kept = features(start, context.val_items)
    source = classification_metrics(
        np.array([lookup[it.label] for it in val_kept]),
        _probs(head, val_feats).argmax(1),
        classes,
    )
    tgt_feats, tgt_items = features(start, context.domains.target)
    by_id = dict(
        zip((it.identity for it in tgt_items), _probs(head, tgt_feats).argmax(1), strict=True)
    )
    target_pred = np.array([by_id[it.identity] for it in tgt_kept])
    note = (
        "--fallback source-only: the check fired, so the run keeps the source-only model "
        "(logistic regression on the pretrained features); the adapted model is not saved"
    )
    return Fallback(model, target_pred, source, clf.head_spec(), note)
