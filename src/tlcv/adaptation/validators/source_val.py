"""Accuracy on the held-out source split: the classic honest choice. It sees no target data,
so it stops early when the source saturates (before adaptation terms reach full strength)."""

from __future__ import annotations

from . import ValidationData, register_validator


@register_validator("source-val")
def source_accuracy(data: ValidationData) -> float:
    if len(data.source_labels) == 0:
        raise ValueError("no held-out source images")
    return float((data.source_logits.argmax(1) == data.source_labels).double().mean())
