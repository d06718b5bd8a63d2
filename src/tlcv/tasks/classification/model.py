"""How a run folder of image classification rebuilds its model (backbone + fitted or trained
head). Runs written before model.json recorded a task are of this kind (the default)."""

from __future__ import annotations

from ...backbones import Backbone
from ...heads.classifiers import head_from_state
from ...heads.model import ClassifierModel
from ...models import register_model_kind


@register_model_kind("classification", default=True)
def rebuild_classifier(backbone: Backbone, spec: dict, head_state: dict) -> ClassifierModel:
    return ClassifierModel(backbone, head_from_state(spec, head_state)).eval()
