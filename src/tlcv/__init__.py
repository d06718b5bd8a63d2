"""tlcv: transfer learning for computer vision.

High-level API: ``train``, ``adapt``, ``extract``, ``evaluate``, ``predict``, ``explain``,
``serve``, ``load_run``, ``experiment`` and ``report``.

Importing ``tlcv`` is cheap: torch, scikit-learn, Lightning and the rest load on the first call
of an API function, so the CLI answers ``--help`` at once and notebooks or other tools can import
tlcv freely (tests/test_startup.py guards it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

_API = (
    "adapt",
    "evaluate",
    "explain",
    "experiment",
    "export",
    "extract",
    "predict",
    "report",
    "resume",
    "serve",
    "train",
)
_EXPORTS = {
    **dict.fromkeys(_API, ".api"),
    "experiment": ".experiments",
    "create_backbone": ".backbones",
    "list_backbones": ".backbones",
    "load_run": ".runs",
}
__all__ = [
    "__version__",
    "adapt",
    "create_backbone",
    "evaluate",
    "explain",
    "experiment",
    "export",
    "extract",
    "list_backbones",
    "load_run",
    "predict",
    "report",
    "resume",
    "serve",
    "train",
]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

if TYPE_CHECKING:  # type checkers and IDEs see the real names
    from .api import (
        adapt,
        evaluate,
        explain,
        export,
        extract,
        predict,
        report,
        resume,
        serve,
        train,
    )
    from .backbones import create_backbone, list_backbones
    from .experiments import experiment
    from .runs import load_run
