"""Clip classification: one class per video file or frame folder (a CNN per frame + a
temporal head: LSTM, GRU, bidirectional, mean, single frame)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ..registry import Registry
from ..strategies import CLIP_STRATEGIES
from . import TASKS, Task


@TASKS.register("clip-classification")
class ClipClassification(Task):
    name = "clip-classification"
    description = "one class per video clip or frame folder"
    run_tags = ("sequence",)  # what model.json records for clip runs
    strategies: ClassVar[Registry] = CLIP_STRATEGIES

    def claims(self, data: str | Path) -> bool:
        from ..video import is_video_data

        return is_video_data(data)

    def discover(self, data, strict):
        from ..video import discover_clips

        return discover_clips(data, strict=strict)

    def collect(self, paths):
        from ..inference import collect_clips

        return collect_clips(paths)

    def score(self, run, items, *, cache=None, **options):
        from ..inference import score_clips

        return score_clips(run, items, cache_dir=cache, **options)
