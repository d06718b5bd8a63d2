"""Options only anomaly runs take (`tlcv train --task anomaly --help` groups them)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import TlcvError
from ...options import Validated, panel_options

METHODS = ("patchcore", "padim")  # methods/ registers one file each (a test compares)
option = panel_options("Anomaly detection (--task anomaly)")


@dataclass
class AnomalyOptions(Validated):
    method: str = option(
        "patchcore",
        "patchcore (memory bank of patch features, nearest-neighbour distance) or padim (a "
        "Gaussian per patch position, Mahalanobis distance).",
        choices=METHODS,
    )
    coreset: float = option(
        0.1,
        "PatchCore: share of the training patches kept in the memory bank (greedy k-centre "
        "coreset on a random projection; 1 keeps all).",
    )
    neighbours: int = option(
        9, "PatchCore: bank neighbours that re-weight an image's score (1: the plain maximum)."
    )
    feature_strides: str | None = option(
        None,
        "Feature maps used, by stride, e.g. 8,16 [default: patchcore 8,16; padim 4,8,16].",
    )
    padim_dims: int = option(100, "PaDiM: feature channels kept (a seeded random choice).")
    holdout: float = option(
        0.2,
        "Share of the good training images kept out of the model to set the threshold (when "
        "the data has no labelled val/ folder).",
    )
    threshold_quantile: float = option(
        0.99,
        "The threshold is this quantile of the held-out good images' scores (0.99: about one "
        "good part in a hundred flagged).",
    )

    def check(self) -> None:
        if not 0 < self.coreset <= 1:
            raise TlcvError("--coreset must be in (0, 1]", hint="0.1 keeps a tenth (the paper)")
        if self.neighbours < 1:
            raise TlcvError("--neighbours must be at least 1")
        if not 0 <= self.holdout < 1:
            raise TlcvError("--holdout must be in [0, 1)")
        if not 0.5 <= self.threshold_quantile <= 1:
            raise TlcvError("--threshold-quantile must be in [0.5, 1]")
        if self.padim_dims < 1:
            raise TlcvError("--padim-dims must be at least 1")
        if self.feature_strides is not None:
            parse_strides(self.feature_strides)


STRIDES = (2, 4, 8, 16, 32)


def parse_strides(text: str) -> tuple[int, ...]:
    """'8,16' -> (8, 16): strides of the backbone pyramid, each once, shallowest first."""
    try:
        strides = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    except ValueError as exc:
        raise TlcvError(f"--feature-strides {text!r}: expected numbers like 8,16") from exc
    if not strides or any(s not in STRIDES for s in strides):
        raise TlcvError(
            f"--feature-strides {text!r}: each must be one of {', '.join(map(str, STRIDES))}"
        )
    return strides
