"""The traditional computer-vision baseline: hand-crafted features (HOG, colour histograms,
optionally LBP, from scikit-image) into a linear SVM or logistic regression (scikit-learn).

Same splits, cache, run folder, evaluate and predict as feature extraction: only the features
differ, so comparisons with deep features change one thing.
"""

from __future__ import annotations

from dataclasses import replace

from ....backbones import get_backbone_spec
from ....config import TrainConfig
from ....errors import TlcvError
from ....runs import Run
from .. import STRATEGIES
from .features import fit_on_features

DEFAULT_DESCRIPTOR = "hog_color"
LINEAR = ("svm", "logreg")


@STRATEGIES.register("classical")
def train_classical(cfg: TrainConfig, progress: bool = False) -> Run | None:
    descriptor = cfg.backbone
    if get_backbone_spec(descriptor).family != "classical":
        # A CNN name (the default included) does not apply: hand-crafted descriptors are
        # chosen with --backbone hog | hog_color | hog_color_lbp.
        descriptor = DEFAULT_DESCRIPTOR
    if cfg.classifier not in LINEAR:
        raise TlcvError(
            f"--strategy classical uses a linear classifier, not {cfg.classifier!r}",
            hint="--classifier svm (linear SVM) or logreg",
        )
    cfg = replace(cfg, backbone=descriptor, weights="none")
    return fit_on_features(cfg, progress, strategy="classical")
