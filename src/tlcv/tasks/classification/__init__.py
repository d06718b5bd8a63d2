"""Image classification: one class per image, from class folders, CSV manifests or npz."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ...registry import Registry, import_module_later
from .. import TASKS, Task

# (TrainConfig, progress) -> Run, one per transfer kind; loaded on first use (they import torch)
STRATEGIES: Registry = Registry(
    "strategy", load=import_module_later(f"{__name__}.strategies")
)


@TASKS.register("classification")
class Classification(Task):
    name = "classification"
    description = "one class per image"
    run_tags = ("classification",)
    strategies: ClassVar[Registry] = STRATEGIES

    def claims(self, data: str | Path) -> bool:
        return True  # the default kind of data

    def discover(self, data, strict):
        from ...data import discover

        return discover(data, strict=strict)

    def collect(self, paths):
        from ...inference import collect_images

        return collect_images(paths)

    def score(self, run, items, *, prefix=None, cache=None, **options):
        from ...inference import score_images

        return score_images(run, items, cache_dir=cache, **options)
