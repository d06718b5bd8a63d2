"""Domain-adaptation benchmark (issue 4): Office-31, six tasks, one command:

    .venv/bin/python benchmarks/bench_adapt.py

MobileNetV2 (../shared/weights), frozen mode (bottleneck + classifier on cached 224 px
features), 3 seeds, honest selection (held-out source split; target labels read only for the
final score). Methods: source-only, dann, cdan, dan, coral, mcc. Cells run in 2 worker
processes (1 thread each) and are appended to a JSONL file, so a rerun skips finished cells.
Prints a Markdown table: target accuracy % per task (mean ± std over seeds) and the average.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

DOMAINS = {"A": "amazon", "D": "dslr", "W": "webcam"}
TASKS = ["A->W", "D->W", "W->D", "A->D", "D->A", "W->A"]
METHODS = ["source-only", "dann", "cdan", "dan", "coral", "mcc"]


def _cell(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    import tlcv

    src, tgt = job["task"].split("->")
    office = Path(job["office"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = tlcv.adapt(
            office / DOMAINS[src],
            office / DOMAINS[tgt],
            Path(tmp) / "run",
            method=job["method"],
            backbone="mobilenet_v2",
            weights=job["weights"],
            mode="frozen",
            epochs=job["epochs"],
            seed=job["seed"],
            cache=job["cache"],
            plots=False,
            num_workers=0,
            select="source-val",  # the selection its documented table used
        )
        metrics = json.loads((run.path / "metrics.json").read_text())
    return {
        **{k: job[k] for k in ("task", "method", "seed", "epochs")},
        "target_accuracy": metrics["target"]["accuracy"],
        "source_val_accuracy": metrics["source"]["accuracy"],
        "best_epoch": metrics["selection"]["best_epoch"],
        "pad_before": metrics["domain_gap"]["proxy_a_distance_before"],
        "pad_after": metrics["domain_gap"]["proxy_a_distance_after"],
        "seconds": round(time.perf_counter() - started, 1),
    }


def finished_cells(out: Path) -> list[dict]:
    """Rows already in the JSONL file (a rerun skips their cells)."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def run_cells(cell, jobs: list[dict], out: Path, workers: int, describe) -> list[dict]:
    """Run ``cell(job)`` in ``workers`` spawned processes, appending each row to ``out`` as it
    finishes (so an interrupted benchmark resumes); ``describe(row)`` is printed per row."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with mp.get_context("spawn").Pool(workers) as pool, open(out, "a") as fh:
        for row in pool.imap_unordered(cell, jobs):
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            rows.append(row)
            print(describe(row), flush=True)
    return rows


def _table(rows: list[dict], methods: list[str]) -> str:
    by = {}
    for r in rows:
        by.setdefault((r["method"], r["task"]), []).append(100 * r["target_accuracy"])
    lines = [
        "| method | " + " | ".join(TASKS) + " | average |",
        "|---|" + "---|" * (len(TASKS) + 1),
    ]
    averages = {}
    for method in methods:
        cells, means = [], []
        for task in TASKS:
            accs = by.get((method, task), [])
            if not accs:
                cells.append("-")
                continue
            means.append(statistics.mean(accs))
            cells.append(f"{statistics.mean(accs):.1f} ± {statistics.pstdev(accs):.1f}")
        if len(means) == len(TASKS):
            averages[method] = statistics.mean(means)
        avg = f"{averages[method]:.1f}" if method in averages else "-"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {avg} |")
    if "source-only" in averages and len(averages) > 1:
        best = max((m for m in averages if m != "source-only"), key=averages.get)
        gain = averages[best] - averages["source-only"]
        verdict = "met" if gain >= 5 else "NOT met"
        lines.append(
            f"\nBest method: {best}, {averages[best]:.1f} vs source-only "
            f"{averages['source-only']:.1f} (+{gain:.1f} points; goal >= +5: {verdict})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=ROOT / "cache" / "features")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "adapt.jsonl")
    args = parser.parse_args()
    office = args.shared / "data" / "office31"
    weights = str(args.shared / "weights" / "mobilenet_v2-b0353104.pth")
    methods = args.methods.split(",")

    import tlcv

    for domain in DOMAINS.values():  # fill the cache once, before the workers share it
        tlcv.extract(office / domain, "mobilenet_v2", weights=weights, cache=args.cache)

    done = finished_cells(args.out)
    finished = {(r["task"], r["method"], r["seed"], r["epochs"]) for r in done}
    jobs = [
        dict(
            task=t,
            method=m,
            seed=s,
            epochs=args.epochs,
            office=str(office),
            weights=weights,
            cache=str(args.cache),
        )  # fmt: skip
        for s in range(args.seeds)
        for t in TASKS
        for m in methods
        if (t, m, s, args.epochs) not in finished
    ]
    print(f"{len(jobs)} cells to run ({len(finished)} already done)", flush=True)
    done += run_cells(
        _cell,
        jobs,
        args.out,
        args.workers,
        lambda row: (
            f"{row['task']} {row['method']} seed {row['seed']}: "
            f"{100 * row['target_accuracy']:.1f} ({row['seconds']} s)"
        ),
    )
    rows = [r for r in done if r["epochs"] == args.epochs]
    print(_table(rows, methods))


if __name__ == "__main__":
    main()
