"""Deployment: ONNX export of runs and backbones, and the ONNX Runtime inference engine.

``engine`` needs only numpy + onnxruntime (what a deployment without torch runs); ``export``
builds the graphs with torch. Both need the ``onnx`` extra: ``pip install 'tlcv[onnx]'``.
"""

from .._lazy import exports_by_module

_MODULES = {  # module: the names it offers
    ".engine": "ENGINES OnnxEngine check_engine",
    ".export": "backbone_encoder export_run run_encoder",
}
__getattr__, __dir__, __all__ = exports_by_module(__name__, globals(), _MODULES)
