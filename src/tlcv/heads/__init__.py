"""Heads: scikit-learn classifiers on features, exported as torch modules."""

from .classifiers import (
    CLASSIFIERS,
    FeatureClassifier,
    get_classifier,
    head_from_state,
    register_classifier,
)
from .modules import BottleneckHead, KNNHead, build_head
from .temporal import FRAME_PICKS, TEMPORAL_HEADS, TemporalHead

__all__ = [
    "CLASSIFIERS",
    "FRAME_PICKS",
    "TEMPORAL_HEADS",
    "TemporalHead",
    "BottleneckHead",
    "FeatureClassifier",
    "KNNHead",
    "build_head",
    "get_classifier",
    "head_from_state",
    "register_classifier",
]
