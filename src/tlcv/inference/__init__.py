"""Inference on a finished run: scoring inputs, `tlcv evaluate`'s files, `tlcv predict`.

Task-specific parts (how inputs are found and scored) come from the run's task
(tlcv.tasks); what is written for the user is here, once.
"""

from .._lazy import exports_by_module

_MODULES = {  # module: the names it offers
    ".scoring": "Scored score_images score_clips",
    ".inputs": "collect_images collect_clips unique_stem",
    ".evaluate": "evaluate",
    ".predict": "predict",
}
__getattr__, __dir__, __all__ = exports_by_module(__name__, globals(), _MODULES)
