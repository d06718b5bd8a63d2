"""The paper's claims as experiments: grids of ordinary runs whose results are summarised with
their spread over seeds. ``tlcv experiment NAME``; each experiment registers itself by name."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import TlcvError

EXPERIMENTS: dict[str, Callable] = {}


def register_experiment(name: str):
    def wrap(fn):
        EXPERIMENTS[name] = fn
        return fn

    return wrap


def get_experiment(name: str) -> Callable:
    if name not in EXPERIMENTS:
        raise TlcvError(
            f"unknown experiment {name!r}", hint=f"choose one of: {', '.join(sorted(EXPERIMENTS))}"
        )
    return EXPERIMENTS[name]


from . import convergence, data_efficiency, generalization  # noqa: E402,F401  (register)


def experiment(name: str, data, out, *, echo=None, **options) -> dict:
    """Run (or resume) ``data-efficiency``, ``convergence`` or ``generalization`` into ``out``.

    ``options``: the experiment's own (strategies, seeds, shots, target, methods, domains) and
    any ``train`` option applied to every cell. Returns the summary also written to
    ``out/summary.json``; ``echo(row)`` is called as each cell finishes. Lives here, above
    tlcv.api (experiments are grids of api calls), so the layers import downwards only.
    """
    return get_experiment(name)(data, out, echo=echo or (lambda row: None), **options)
