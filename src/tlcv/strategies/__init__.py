"""Transfer strategies, registered by name per task: ``tlcv train --strategy NAME``.

Each is a function (TrainConfig, progress) -> Run (None on torchrun ranks > 0) that supplies
what differs (data, head, objective, scoring) and hands the rest to engine.lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry, import_submodules

_load = import_submodules(__name__, __path__)  # one file per strategy (or family)
STRATEGIES: Registry[Callable] = Registry("strategy", load=_load)  # images
CLIP_STRATEGIES: Registry[Callable] = Registry("clip strategy", load=_load)  # video clips
SEGMENTATION_STRATEGIES: Registry[Callable] = Registry("segmentation strategy", load=_load)
DETECTION_STRATEGIES: Registry[Callable] = Registry("detection strategy", load=_load)
register_strategy = STRATEGIES.register
get_strategy = STRATEGIES.get
