"""Image classification: one class per image, from class folders, CSV manifests or npz."""

from __future__ import annotations

from pathlib import Path

from .. import Task, register_task
from .options import ClassificationOptions


@register_task("classification", strategy_kind="strategy")
class Classification(Task):
    description = "one class per image"
    options = ClassificationOptions

    def claims(self, data: str | Path) -> bool:
        return True  # the default kind of data

    def discover(self, data, strict):
        from ...data import discover

        return discover(data, strict=strict)

    def score(self, run, items, *, prefix=None, cache=None, **options):
        from ...inference import score_images

        return score_images(run, items, cache_dir=cache, **options)


STRATEGIES = Classification.strategies  # what strategies/ registers into
