"""Clip classification: one class per video file or frame folder (a CNN per frame + a
temporal head: LSTM, GRU, bidirectional, mean, single frame)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ...registry import Registry, import_module_later
from .. import TASKS, Task
from .options import ClipOptions

# (TrainConfig, progress) -> Run, one per transfer kind; loaded on first use (they import torch)
STRATEGIES: Registry = Registry(
    "clip strategy", load=import_module_later(f"{__name__}.strategies")
)


@TASKS.register("clip-classification")
class ClipClassification(Task):
    name = "clip-classification"
    description = "one class per video clip or frame folder"
    run_tags = ("sequence",)  # what model.json records for clip runs
    strategies: ClassVar[Registry] = STRATEGIES
    options = ClipOptions

    def claims(self, data: str | Path) -> bool:
        from ...video import is_video_data

        return is_video_data(data)

    def chosen_by(self, cfg) -> bool:
        return cfg.temporal is not None  # a temporal head is only for clips

    def prepare(self, cfg) -> None:
        if cfg.temporal is None:
            cfg.temporal = "lstm"

    def discover(self, data, strict):
        from ...video import discover_clips

        return discover_clips(data, strict=strict)

    def collect(self, paths):
        from ...inference import collect_clips

        return collect_clips(paths)

    def score(self, run, items, *, cache=None, **options):
        from ...inference import score_clips

        return score_clips(run, items, cache_dir=cache, **options)
