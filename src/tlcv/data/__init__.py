"""Data: find labelled images, split them, decode them safely, batch them."""

from .._lazy import lazy_exports

_EXPORTS = {
    "IMAGE_SUFFIXES": ".decode",
    "ImageItem": ".decode",
    "file_identity": ".decode",
    "open_rgb": ".decode",
    "Batch": ".loading",
    "default_workers_for": ".loading",
    "eval_transform": ".loading",
    "image_loader": ".loading",
    "normalize": ".loading",
    "Source": ".sources",
    "discover": ".sources",
    "Splits": ".splits",
    "few_shot": ".splits",
    "make_splits": ".splits",
    "stratified_split": ".splits",
}
__all__ = sorted(_EXPORTS)
# Modules load on first use: the torch-free parts (sources, cache look-ups) stay cheap.
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
