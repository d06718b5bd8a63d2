"""tlcv: transfer learning for computer vision.

High-level API: ``train``, ``extract``, ``evaluate``, ``predict``, ``load_run``.
"""

__version__ = "0.1.0"

from .api import evaluate, extract, predict, train  # noqa: E402
from .backbones import create_backbone, list_backbones  # noqa: E402
from .runs import load_run  # noqa: E402

__all__ = [
    "__version__",
    "create_backbone",
    "evaluate",
    "extract",
    "list_backbones",
    "load_run",
    "predict",
    "train",
]
