"""Video and image sequences: clip discovery and decoding (PyAV), frame sampling."""

from .decode import VIDEO_SUFFIXES, clip_identity, is_clip, read_frames
from .sampling import SAMPLINGS, sample_indices
from .sources import discover_clips, is_video_data

__all__ = [
    "SAMPLINGS",
    "VIDEO_SUFFIXES",
    "clip_identity",
    "discover_clips",
    "is_clip",
    "is_video_data",
    "read_frames",
    "sample_indices",
]
