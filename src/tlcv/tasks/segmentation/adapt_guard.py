"""After a segmentation adaptation: the negative-transfer guard, then the scores.

The guard is the classifier's (adaptation/health.py) over pixels: the adapted model's
predictions on a fixed sample of target pixels against the source pixels' class mix and, with
``--init``, against the start model's predictions on the same pixels (the source-only
reference). When it finds the adaptation probably hurt (predictions collapsed onto a class,
or drifted from the class mix much further than the reference's), ``--fallback source-only``
keeps the start model. No target mask is read until ``score``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...adaptation.health import COLLAPSE_RATIO, check, verdict
from ...config import AdaptConfig
from ...data import normalize
from ...engine.seeding import seed_of
from ...features.extract import resolve_device
from .adapt_objective import image_loader, inside_images, sample_pixels
from .strategies import pixel_counts


@torch.no_grad()
def target_pixel_probs(model, items, fmt, size: int, cfg: AdaptConfig) -> np.ndarray:
    """Softmax rows of a seeded sample of pixels of every target image (the same pixels for
    any model: they are drawn from the images, not from predictions)."""
    device = resolve_device(cfg.device)
    model = model.to(device).eval()
    prep = model.backbone.preprocessing
    loader = image_loader(items, fmt, size, batch_size=cfg.batch_size, num_workers=cfg.num_workers)
    rows = []
    for index, (x, y, _) in enumerate(loader):
        if len(x) == 0:
            continue
        logits = model(normalize(x, prep, device, channels_last=True)).float()
        valid = inside_images(x).to(device)
        sampled, _ = sample_pixels(logits, y.to(device), valid, seed_of(cfg.seed, 2, index))
        rows.append(torch.softmax(sampled, dim=1).cpu())
    model.cpu()
    return torch.cat(rows).numpy() if rows else np.zeros((0, len(fmt.classes)))


def assess(cfg: AdaptConfig, model, reference, domains, size: int):
    """(health for metrics.json, the model the run keeps)."""
    fmt, classes = domains.source.format, domains.source.classes
    probs = target_pixel_probs(model, domains.target, fmt, size, cfg)
    counts = pixel_counts(domains.train, fmt, len(classes)).double()
    prior = (counts / counts.sum().clamp(min=1)).numpy()
    ref_probs = (
        None if reference is None else target_pixel_probs(reference, domains.target, fmt, size, cfg)
    )
    health = check(probs, np.empty(0, int), len(classes), ref_probs, prior=prior)
    health["reference"] = (
        f"the --init run {cfg.init}"
        if reference is not None
        else "none: start from a source-only run (--init) for the full check"
    )
    reasons = verdict(health, classes, unit="target pixels") + vanished(health, classes)
    metrics = {**health, "fired": bool(reasons), "reasons": reasons, "fallback": cfg.fallback}
    if reasons and cfg.fallback == "source-only" and reference is not None:
        return {**metrics, "kept": "source-only"}, reference
    return metrics, model


# Entropy minimisation and pseudo-labels favour the classes that cover most pixels: small
# ones (poles, signs, people) can vanish from the predictions while the class mix as a whole
# hardly moves (ADVENT's own paper adds a class-ratio prior against it). A class "vanishes"
# when its share of the target pixels falls below 1/COLLAPSE_RATIO of the reference's, the
# collapse check's ratio the other way round, among the classes the reference predicts on at
# least VANISH_MIN_SHARE of the pixels.
VANISH_MIN_SHARE = 0.002


def vanished(health: dict, classes: list[str]) -> list[str]:
    """A reason when classes the ``--init`` model predicts at dusk all but vanish."""
    reference = health.get("source_only")
    if not reference:
        return []
    adapted = health["adapted"]["histogram"]
    gone = [
        (classes[c], ref, adapted[c])
        for c, ref in enumerate(reference["histogram"])
        if ref >= VANISH_MIN_SHARE and adapted[c] < ref / COLLAPSE_RATIO
    ]
    if not gone:
        return []
    shares = ", ".join(f"'{n}' {100 * a:.2f}% vs {100 * r:.2f}%" for n, r, a in gone)
    return [f"classes all but vanished from the target pixels ({shares} for source-only)"]


def score(cfg: AdaptConfig, model, reference, domains, size: int, run_dir: Path) -> dict:
    """The held-out source and, when the target has masks, the target (with intervals), and
    the ``--init`` model on the same target for comparison."""
    from ...evaluation.bootstrap import DEFAULT_RESAMPLES
    from .evaluate import score_pairs, write_panels
    from .inference import palette

    fmt, device = domains.source.format, resolve_device(cfg.device)

    def scores(net, items, keep: int = 0, bootstrap: int = DEFAULT_RESAMPLES):
        result, kept, _ = score_pairs(net, items, fmt, size, device, keep=keep,
                                      bootstrap=bootstrap)  # fmt: skip
        return {k: v for k, v in result.items() if k not in ("confusion", "per_image")}, kept

    metrics: dict[str, dict] = {"source": scores(model, domains.val)[0]}
    if domains.target_scored:
        metrics["target"], kept = scores(model, domains.target_scored, keep=4)
        write_panels(kept, palette(len(fmt.classes), fmt.to_dict()), run_dir / "overlays")
        if reference is model:  # the guard kept the --init model: the same scores
            metrics["init_target"] = metrics["target"]
        elif reference is not None:
            metrics["init_target"] = scores(reference, domains.target_scored, bootstrap=0)[0]
    return metrics
