"""Frozen-backbone features and their on-disk cache."""

from .._lazy import lazy_exports

_EXPORTS = {
    "FeatureCache": ".cache",
    "default_cache_dir": ".cache",
    "item_key": ".cache",
    "FeatureSet": ".cache",
    "cache_for": ".extract",
    "extract_features": ".extract",
    "resolve_device": ".extract",
}
__all__ = sorted(_EXPORTS)
# Modules load on first use: the torch-free parts (sources, cache look-ups) stay cheap.
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
