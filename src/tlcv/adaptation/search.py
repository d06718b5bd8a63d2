"""``--trade-off-grid``: the adaptation weight chosen by a validator, never by target labels.

One run per value under ``OUT/trade-off-search/t=<value>/``; each is scored by the ``--select``
validator at the epoch that validator kept, and the best value is trained again into ``OUT``
(the same seed gives the same run), whose metrics.json (``trade_off_search``) and notes say
what was tried and why this one won.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..config import AdaptConfig
from ..errors import TlcvError
from ..io import write_json, write_text
from ..runs import Run, load_run

DEFAULT_GRID = (0.1, 0.3, 1.0)


def parse_grid(spec: str) -> list[float]:
    """``auto`` -> DEFAULT_GRID; else comma-separated non-negative numbers."""
    if spec.strip().lower() == "auto":
        return list(DEFAULT_GRID)
    try:
        values = [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        values = []
    if len(values) < 2 or any(v < 0 for v in values):
        raise TlcvError(
            f"bad --trade-off-grid {spec!r}",
            hint="give 'auto' or at least two non-negative numbers, e.g. 0.1,0.3,1",
        )
    return values


def _score(run: Run, monitor: str) -> float:
    """The validator's value at the epoch the run kept."""
    best = run.metrics["selection"]["best_epoch"]
    with open(run.path / "history.csv") as fh:
        for row in csv.DictReader(fh):
            if int(row["epoch"]) == best and row.get(monitor) not in (None, ""):
                return float(row[monitor])
    return float("-inf")


def search_trade_off(
    cfg: AdaptConfig, progress: bool, adapt_one: Callable[[AdaptConfig, bool], Run | None],
    monitor: str,
) -> Run | None:  # fmt: skip
    if cfg.select == "last":
        raise TlcvError(
            "--trade-off-grid needs a validator to choose with",
            hint="use --select source-val, entropy, im, bnm, snd or dev",
        )
    if cfg.resume:
        raise TlcvError(
            "--resume continues one run, not a trade-off search",
            hint="rerun the same command: finished trials are kept under OUT/trade-off-search/",
        )
    grid = parse_grid(cfg.trade_off_grid or "")
    out = Path(cfg.out).expanduser()
    scores: dict[float, float] = {}
    for value in grid:
        trial_dir = out / "trade-off-search" / f"t={value:g}"
        trial_cfg = replace(cfg, trade_off=value, trade_off_grid=None, out=str(trial_dir))
        if (trial_dir / "model.json").exists():  # a finished trial of an interrupted search
            run = load_run(trial_dir)
        else:
            run = adapt_one(replace(trial_cfg, overwrite=True), progress)
        if run is None:  # a non-zero rank under torchrun
            return None
        scores[value] = _score(run, monitor)
    best = max(scores, key=scores.get)
    final = adapt_one(replace(cfg, trade_off=best, trade_off_grid=None), progress)
    if final is None:
        return None
    record = {
        "validator": cfg.select,
        "scores": {f"{k:g}": v for k, v in scores.items()},
        "chosen": best,
        "target_labels_used": False,
    }
    metrics = json.loads((final.path / "metrics.json").read_text())
    metrics["trade_off_search"] = record
    write_json(final.path / "metrics.json", metrics)
    note = (
        f"trade-off {best:g} chosen by {cfg.select} among "
        + ", ".join(f"{k:g} ({v:.4f})" for k, v in scores.items())
        + "; trials in trade-off-search/"
    )
    notes = final.path / "notes.txt"
    write_text(notes, (notes.read_text() if notes.exists() else "") + f"- {note}\n")
    return load_run(final.path)
