"""Options of ``tlcv adapt``: declared with every other option in tlcv/config.py."""

from ..config import ADAPT_KEYS, ADAPT_MODES, SELECTIONS, AdaptConfig

MODES = ADAPT_MODES
__all__ = ["ADAPT_KEYS", "MODES", "SELECTIONS", "AdaptConfig"]
