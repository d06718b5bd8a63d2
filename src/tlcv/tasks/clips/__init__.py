"""Clip classification: one class per video file or frame folder (a CNN per frame + a
temporal head: LSTM, GRU, bidirectional, mean, single frame)."""

from __future__ import annotations

from pathlib import Path

from .. import Task, register_task
from .options import ClipOptions


@register_task("clip-classification", older_names=("sequence",), strategy_kind="clip strategy")
class ClipClassification(Task):
    description = "one class per video clip or frame folder"
    options = ClipOptions
    serve_refusal = "the page takes one image; predict clips with `tlcv predict RUN CLIP`"

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

    def explain(self, run, paths, out, **options) -> list[dict]:
        """A map per sampled frame of each clip: where in it is the evidence for the clip's
        class."""
        from ...interpret.pictures import explain_clips

        return explain_clips(run, paths, out, **options)

    def score(self, run, items, *, cache=None, **options):
        from ...inference import score_clips

        return score_clips(run, items, cache_dir=cache, **options)


STRATEGIES = ClipClassification.strategies  # what strategies.py registers into
