"""Frozen-backbone features and their on-disk cache."""

from .._lazy import exports_by_module

_MODULES = {  # module: the names it offers
    ".cache": "FeatureCache default_cache_dir item_key FeatureSet",
    ".extract": "cache_for extract_features resolve_device",
}
# Modules load on first use: the torch-free parts (sources, cache look-ups) stay cheap.
__getattr__, __dir__, __all__ = exports_by_module(__name__, globals(), _MODULES)
