"""Model kinds: how a run folder's tensors become a model again.

model.json's ``task`` names the kind. Each kind registers its rebuild function next to the
model it builds (``@MODEL_KINDS.register("segmentation")`` in segmentation/model.py), so
runs.py looks the kind up instead of knowing every task, and a new task adds its kind in its
own ``model.py``. Below runs and tasks; torch-free until a kind is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from .backbones import Backbone

# (rebuilt backbone, model.json's "head" spec, the head's tensors) -> the model, in eval mode
Rebuild = Callable[["Backbone", dict, dict], "nn.Module"]
DEFAULT_KIND = "classification"  # runs written before model.json recorded a task


def _import_model_modules() -> None:
    """Every ``tlcv.<package>.model`` module registers the kinds it builds."""
    for module in sorted(Path(__file__).parent.glob("*/model.py")):
        importlib.import_module(f"{__package__}.{module.parent.name}.model")


MODEL_KINDS: Registry[Rebuild] = Registry("model kind", load=_import_model_modules)


def register_model_kind(name: str) -> Callable[[Rebuild], Rebuild]:
    return MODEL_KINDS.register(name)
