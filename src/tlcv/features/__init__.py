"""Frozen-backbone features and their on-disk cache."""

from .cache import FeatureCache, default_cache_dir, item_key
from .extract import FeatureSet, cache_for, extract_features, resolve_device

__all__ = [
    "FeatureCache",
    "FeatureSet",
    "cache_for",
    "default_cache_dir",
    "extract_features",
    "item_key",
    "resolve_device",
]
