"""tlcv: transfer learning for computer vision.

High-level API: ``train``, ``adapt``, ``extract``, ``evaluate``, ``predict``, ``load_run``,
``experiment`` and ``report``.
"""

__version__ = "0.1.0"

from .api import adapt, evaluate, experiment, extract, predict, report, resume, train  # noqa: E402
from .backbones import create_backbone, list_backbones  # noqa: E402
from .runs import load_run  # noqa: E402

__all__ = [
    "__version__",
    "adapt",
    "create_backbone",
    "evaluate",
    "experiment",
    "extract",
    "list_backbones",
    "load_run",
    "predict",
    "report",
    "resume",
    "train",
]
