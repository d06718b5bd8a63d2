"""Which frames of a clip a model sees: T uniformly spaced, a random window, or a stride."""

from __future__ import annotations

import numpy as np

from ..tasks.clips.options import SAMPLINGS  # declared with the options


def sample_indices(
    n: int,
    frames: int,
    how: str = "uniform",
    *,
    stride: int = 1,
    rng: np.random.Generator | None = None,
    prefix: int | None = None,
) -> np.ndarray:
    """Indices into a clip of ``n`` frames (at most ``frames``, fewer for short clips).

    ``prefix`` restricts the choice to the first K frames (how early can the model tell?).
    Clips shorter than ``frames`` give all their frames: the caller packs variable lengths.
    """
    n = min(n, prefix) if prefix else n
    if n <= frames and how != "stride":
        return np.arange(n)
    if how == "uniform":
        return np.unique(np.linspace(0, n - 1, frames).round().astype(int))
    if how == "random":
        start = int((rng or np.random.default_rng()).integers(0, n - frames + 1))
        return np.arange(start, start + frames)
    if how == "stride":
        return np.arange(0, n, max(1, stride))[:frames]
    raise ValueError(f"unknown sampling {how!r}; choose one of {SAMPLINGS}")
