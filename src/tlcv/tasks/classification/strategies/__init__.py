"""Image classification's transfer strategies, one module each: features (frozen backbone +
a new classifier), finetune and scratch (the training engine), classical (hand-crafted
features + a linear model). Each registers itself in the task's STRATEGIES."""

from . import classical, features, finetune  # noqa: F401 - registration on import
