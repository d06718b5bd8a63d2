"""A resumable grid of runs: each finished cell is one line of results.jsonl, so a crashed or
interrupted experiment rerun skips what is done."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path

from ..io import write_json


class CellLog:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.path = self.out / "results.jsonl"
        self.rows: list[dict] = []
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    try:
                        self.rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut by a crash: that cell runs again

    def done(self, key: str) -> bool:
        return any(r["cell"] == key for r in self.rows)

    def add(self, row: dict) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
        self.rows.append(row)

    def run(self, cells: Iterable[tuple[str, dict]], work: Callable[[dict], dict], echo) -> int:
        """Run each (key, spec) not yet done; returns how many were skipped as finished."""
        skipped = 0
        for key, spec in cells:
            if self.done(key):
                skipped += 1
                continue
            self.add({"cell": key, **spec, **work(spec)})
            echo(self.rows[-1])
        return skipped


def mean_spread(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def write_experiment(out: Path, info: dict) -> None:
    write_json(Path(out) / "experiment.json", info)
