"""Options only clip runs take (`tlcv train --task clip-classification --help` groups them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import TlcvError
from ...options import Validated, option

TEMPORAL_HEADS = ("lstm", "gru", "bilstm", "bigru", "mean", "frame")
SAMPLINGS = ("uniform", "random", "stride")
FRAME_PICKS = ("middle", "first")
PANEL = "Clips (--task clip-classification)"


@dataclass
class ClipOptions(Validated):
    temporal: str | None = option(
        None,
        "lstm, gru, bilstm, bigru, mean or frame (single-frame baseline); giving it picks the "
        "clip task. [default for video data: lstm]",
        choices=TEMPORAL_HEADS,
        panel=PANEL,
    )
    frames: int = option(16, "Frames per clip (T).", panel=PANEL)
    # Training windows: random (T consecutive frames at a new place each epoch; measured better
    # on whole tracks and prefixes, docs/benchmarks.md) | uniform | stride. Evaluation always
    # spreads T frames uniformly.
    sampling: str = option(
        "random",
        "Training: random (a window of T consecutive frames, moved each epoch), uniform (T "
        "frames spread over the clip) or stride. Evaluation spreads T frames.",
        choices=SAMPLINGS,
        panel=PANEL,
    )
    stride: int = option(1, "Step for --sampling stride.", panel=PANEL)
    hidden: int = option(256, "RNN hidden size.", panel=PANEL)
    rnn_layers: int = option(1, "RNN layers.", panel=PANEL)
    frame_pick: str = option(
        "middle", "With --temporal frame: middle or first frame.", choices=FRAME_PICKS,
        panel=PANEL,
    )  # fmt: skip

    def check(self) -> None:
        if self.frames < 1:
            raise TlcvError("--frames must be at least 1")
