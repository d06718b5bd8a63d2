"""Options only clip runs take (`tlcv train --task clip-classification --help` groups them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import TlcvError
from ...options import Validated, panel_options

TEMPORAL_HEADS = ("lstm", "gru", "bilstm", "bigru", "mean", "frame")
SAMPLINGS = ("uniform", "random", "stride")
FRAME_PICKS = ("middle", "first")
option = panel_options("Clips (--task clip-classification)")


@dataclass
class ClipOptions(Validated):
    temporal: str | None = option(
        None,
        "lstm, gru, bilstm, bigru, mean or frame (single-frame baseline); giving it picks the "
        "clip task. [default for video data: lstm]",
        choices=TEMPORAL_HEADS,
    )
    frames: int = option(16, "Frames per clip (T).")
    # Training windows: random (T consecutive frames at a new place each epoch; measured better
    # on whole tracks and prefixes, docs/benchmarks.md) | uniform | stride. Evaluation always
    # spreads T frames uniformly.
    sampling: str = option(
        "random",
        "Training: random (a window of T consecutive frames, moved each epoch), uniform (T "
        "frames spread over the clip) or stride. Evaluation spreads T frames.",
        choices=SAMPLINGS,
    )
    stride: int = option(1, "Step for --sampling stride.")
    hidden: int = option(256, "RNN hidden size.")
    rnn_layers: int = option(1, "RNN layers.")
    frame_pick: str = option(
        "middle", "With --temporal frame: middle or first frame.", choices=FRAME_PICKS,
    )  # fmt: skip

    def check(self) -> None:
        if self.frames < 1:
            raise TlcvError("--frames must be at least 1")
