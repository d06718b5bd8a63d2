"""Domain adaptation: labelled source, unlabelled target, methods registered by name."""

from ..config import AdaptConfig
from .methods import AdaptationMethod, DomainBatch, available_methods, register_method
from .pipeline import adapt

__all__ = [
    "AdaptConfig",
    "AdaptationMethod",
    "DomainBatch",
    "adapt",
    "available_methods",
    "register_method",
]
