"""The last step of `tlcv adapt`: score the kept model (the adapted one, or the guard's
source-only fallback) on the source hold-out and, when the target has labels, on the target
(the one place target labels are read), draw the domains, and write the run folder."""

from __future__ import annotations

import numpy as np
import torch

from ..engine.lifecycle import Outcome, RunLifecycle
from ..evaluation import classification_metrics, plot_confusion
from ..heads import BottleneckHead
from ..io import write_text
from ..runs import Run, rows_to_csv
from .analysis import plot_domains, proxy_a_distance


@torch.no_grad()
def head_outputs(head: BottleneckHead, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = torch.from_numpy(feats).float()
    bottleneck = head.features(x)
    return bottleneck.numpy(), head.classifier(bottleneck).numpy()


def write(context, life: RunLifecycle, trained, health, skipped: list) -> Run:
    """Score the kept model, draw the domains, write the run folder."""
    cfg, domains, features = context.cfg, context.domains, context.features
    model, artifacts, notes = trained.model, trained.artifacts, context.notes
    before = context.before
    train_items, val_items = context.train_items, context.val_items
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
    f_val, logits_val = head_outputs(head, val_feats)
    metrics["source"] = classification_metrics(
        np.array([lookup[it.label] for it in val_kept]), logits_val.argmax(1), classes
    )
    tgt_feats, tgt_kept = features(model.backbone, domains.target)
    f_tgt, logits_tgt = head_outputs(head, tgt_feats)
    f_train, _ = head_outputs(head, train_feats)
    pred_t = logits_tgt.argmax(1)
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
