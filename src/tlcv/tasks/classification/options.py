"""Options only classification runs take (`tlcv train --help` groups them): how a two-class
model decides (its positive class, the threshold rule) and whether its probabilities are
calibrated. All are fitted on the validation split (evaluation/binary.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import TlcvError
from ...options import Validated, panel_options

CALIBRATIONS = ("none", "temperature")
THRESHOLDS = ("argmax", "youden")
option = panel_options("Two-class classification")


@dataclass
class ClassificationOptions(Validated):
    positive: str | None = option(
        None, "The class a two-class screen looks for [default: the second class by name]."
    )
    threshold: str = option(
        "argmax",
        "Decision threshold: argmax (the more probable class, 0.5) or youden (Youden's J on "
        "the validation split).",
        choices=THRESHOLDS,
    )
    target_sensitivity: float | None = option(
        None,
        "Decision threshold: the highest that keeps this sensitivity on the validation split "
        "(overrides --threshold).",
    )
    calibrate: str = option(
        "none",
        "temperature: fit softmax temperature scaling on the validation split.",
        choices=CALIBRATIONS,
    )

    def check(self) -> None:
        if self.target_sensitivity is not None and not 0 < self.target_sensitivity <= 1:
            raise TlcvError("--target-sensitivity must be in (0, 1], e.g. 0.95")
