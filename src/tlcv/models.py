"""Model kinds: how a run folder's tensors become a model again.

model.json's ``task`` names the kind. Each kind registers its rebuild function next to the
model it builds (``@register_model_kind(NAME)`` in ``tasks/<name>/model.py``), so runs.py
looks the kind up instead of knowing every task, and a new task adds its kind in its own
package. One kind is the default: what runs written before model.json recorded a kind are.
Below runs and tasks; torch-free until a kind is asked for.
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
_DEFAULT: list[str] = []  # set by the kind registered with default=True


def _import_model_modules() -> None:
    """Every ``tlcv.tasks.<name>.model`` module registers the kinds it builds."""
    for module in sorted((Path(__file__).parent / "tasks").glob("*/model.py")):
        importlib.import_module(f"{__package__}.tasks.{module.parent.name}.model")


MODEL_KINDS: Registry[Rebuild] = Registry("model kind", load=_import_model_modules)


def register_model_kind(*names: str, default: bool = False) -> Callable[[Rebuild], Rebuild]:
    """Register a rebuild under its kind (and older names of it); ``default``: the kind of
    run folders that record none."""

    def wrap(rebuild: Rebuild) -> Rebuild:
        for name in names:
            MODEL_KINDS.add(name, rebuild)
        if default:
            _DEFAULT.append(names[0])
        return rebuild

    return wrap


def default_kind() -> str:
    """The kind of a run folder whose model.json names none."""
    MODEL_KINDS.names()  # loads the modules that register
    return _DEFAULT[0]
