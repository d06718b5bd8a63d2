"""The one training engine (Lightning), shared by fine-tuning, scratch, adaptation, sequences."""

from .callbacks import FreezeSchedule, RunArtifacts
from .data import AUGMENTS, EpochSampler, labelled_loader, train_transform
from .module import Objective, Recipe, TransferModule
from .trainer import AtomicCheckpointIO, build_trainer

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
    "train_transform",
]
