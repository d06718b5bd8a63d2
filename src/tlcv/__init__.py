"""tlcv: transfer learning for computer vision.

High-level API: ``train``, ``adapt``, ``extract``, ``evaluate``, ``predict``, ``load_run``.
"""

__version__ = "0.1.0"

from .api import adapt, evaluate, extract, predict, resume, train  # noqa: E402
from .backbones import create_backbone, list_backbones  # noqa: E402
from .runs import load_run  # noqa: E402

__all__ = [
    "__version__",
    "adapt",
    "create_backbone",
    "evaluate",
    "extract",
    "list_backbones",
    "load_run",
    "predict",
    "resume",
    "train",
]
