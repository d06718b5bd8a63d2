"""Metrics and plots shared by every strategy (loaded on first use: the torch-free engine
imports evaluation.binary without scikit-learn's metrics)."""

from .._lazy import exports_by_module

__getattr__, __dir__, __all__ = exports_by_module(
    __name__, globals(), {".metrics": "classification_metrics plot_confusion"}
)
