"""Transfer strategies, each registered by name: ``tlcv train --strategy NAME``."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import TlcvError

STRATEGIES: dict[str, Callable] = {}


def register_strategy(name: str):
    def wrap(fn):
        STRATEGIES[name] = fn
        return fn

    return wrap


def get_strategy(name: str) -> Callable:
    if name not in STRATEGIES:
        raise TlcvError(
            f"unknown strategy {name!r}", hint=f"choose one of: {', '.join(sorted(STRATEGIES))}"
        )
    return STRATEGIES[name]


from . import classical, features, finetune  # noqa: E402,F401  (register the strategies)
