"""Deployment: ONNX export of runs and backbones, and the ONNX Runtime inference engine.

``engine`` needs only numpy + onnxruntime (what a deployment without torch runs); ``export``
builds the graphs with torch. Both need the ``onnx`` extra: ``pip install 'tlcv[onnx]'``.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "ENGINES": ".engine",
    "OnnxEngine": ".engine",
    "check_engine": ".engine",
    "backbone_encoder": ".export",
    "export_run": ".export",
    "run_encoder": ".export",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
