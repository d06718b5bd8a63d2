"""Inference on a finished run: scoring inputs, `tlcv evaluate`'s files, `tlcv predict`.

Task-specific parts (how inputs are found and scored) come from the run's task
(tlcv.tasks); what is written for the user is here, once.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "Scored": ".scoring",
    "score_images": ".scoring",
    "score_clips": ".scoring",
    "collect_images": ".inputs",
    "collect_clips": ".inputs",
    "evaluate": ".evaluate",
    "predict": ".predict",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
