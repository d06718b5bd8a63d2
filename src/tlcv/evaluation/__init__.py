"""Metrics and plots shared by every strategy."""

from .metrics import classification_metrics, plot_confusion

__all__ = ["classification_metrics", "plot_confusion"]
