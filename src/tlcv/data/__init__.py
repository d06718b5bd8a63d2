"""Data: find labelled images, split them, decode them safely, batch them."""

from .decode import IMAGE_SUFFIXES, ImageItem, file_identity, open_rgb
from .loading import Batch, default_workers_for, eval_transform, image_loader, normalize
from .sources import Source, discover
from .splits import Splits, few_shot, make_splits, stratified_split

__all__ = [
    "IMAGE_SUFFIXES",
    "Batch",
    "ImageItem",
    "Source",
    "Splits",
    "default_workers_for",
    "discover",
    "eval_transform",
    "few_shot",
    "file_identity",
    "image_loader",
    "make_splits",
    "normalize",
    "open_rgb",
    "stratified_split",
]
