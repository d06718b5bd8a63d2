"""Data: find labelled images, split them, decode them safely, batch them."""

from .._lazy import exports_by_module

_MODULES = {  # module: the names it offers
    ".decode": "IMAGE_SUFFIXES ImageItem file_identity open_rgb",
    ".loading": "Batch default_workers_for eval_transform image_loader normalize",
    ".sources": "Source discover",
    ".splits": "Splits few_shot make_splits stratified_split",
}
# Modules load on first use: the torch-free parts (sources, cache look-ups) stay cheap.
__getattr__, __dir__, __all__ = exports_by_module(__name__, globals(), _MODULES)
