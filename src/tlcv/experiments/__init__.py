"""The paper's claims as experiments: grids of ordinary runs whose results are summarised with
their spread over seeds. ``tlcv experiment NAME``; each experiment registers itself by name."""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry, import_submodules

EXPERIMENTS: Registry[Callable] = Registry(
    "experiment",
    load=import_submodules(__name__, __path__),  # one file per experiment
)
register_experiment = EXPERIMENTS.register
get_experiment = EXPERIMENTS.get


def experiment(name: str, data, out, *, echo=None, **options) -> dict:
    """Run (or resume) ``data-efficiency``, ``convergence`` or ``generalization`` into ``out``.

    ``options``: the experiment's own (strategies, seeds, shots, target, methods, domains) and
    any ``train`` option applied to every cell. Returns the summary also written to
    ``out/summary.json``; ``echo(row)`` is called as each cell finishes. Lives here, above
    tlcv.api (experiments are grids of api calls), so the layers import downwards only.
    """
    return get_experiment(name)(data, out, echo=echo or (lambda row: None), **options)
