"""The one training engine (Lightning), shared by fine-tuning, scratch, adaptation, sequences."""

import warnings

from .callbacks import FreezeSchedule, RunArtifacts
from .data import AUGMENTS, EpochSampler, labelled_loader
from .module import Objective, Recipe, TransferModule
from .trainer import AtomicCheckpointIO, build_trainer

# Lightning 2.x still builds torch's deprecated LeafSpec with recent torch releases; the
# FutureWarning is Lightning's to fix and tells a tlcv user nothing.
warnings.filterwarnings(
    "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
)

__all__ = [
    "AUGMENTS",
    "AtomicCheckpointIO",
    "EpochSampler",
    "FreezeSchedule",
    "Objective",
    "Recipe",
    "RunArtifacts",
    "TransferModule",
    "build_trainer",
    "labelled_loader",
]
