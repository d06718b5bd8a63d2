"""Choosing the adapted model without target labels (issue 16): Office-31, six tasks, one command:

    .venv/bin/python benchmarks/bench_selection.py [--seeds 3] [--out bench_out/selection]

The setting of bench_adapt.py (MobileNetV2 from ../shared/weights, frozen 224 px features, a
256-wide bottleneck, AdamW, batch 32 per domain, 15 epochs) run as ``tlcv experiment
adaptation-selection``: per task, a grid of methods x trade-offs x seeds, every validator logged
per epoch, the target accuracy per epoch logged as ORACLE (read only for scoring). Each
validator then picks method + trade-off + epoch per task and seed; the table gives the target
accuracy of its picks averaged over the 6 tasks x seeds, beside source-only (source-val) and
the oracle, with the rank correlation between the validator and target accuracy.

Tasks run as separate experiment folders in 2 worker processes (1 thread each); each folder
resumes from its results.jsonl, so an interrupted benchmark reruns only what is missing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TASKS = {
    "A->W": ("amazon", "webcam"),
    "D->W": ("dslr", "webcam"),
    "W->D": ("webcam", "dslr"),
    "A->D": ("amazon", "dslr"),
    "D->A": ("dslr", "amazon"),
    "W->A": ("webcam", "amazon"),
}
METHODS = "source-only,dann,cdan,dan,mcc"


def _task(job: dict) -> str:
    import torch

    torch.set_num_threads(1)
    from tlcv.experiments import experiment

    source, target = TASKS[job["task"]]
    started = time.perf_counter()
    experiment(
        "adaptation-selection",
        job["office"],
        job["out"],
        pairs=f"{source}->{target}",
        methods=job["methods"],
        trade_offs=job["trade_offs"],
        seeds=job["seeds"],
        echo=lambda row: print(f"  {row['cell']}", flush=True),
        backbone="mobilenet_v2",
        weights=job["weights"],
        mode="frozen",
        epochs=job["epochs"],
        cache=job["cache"],
        num_workers=0,
    )
    return f"{job['task']} done in {time.perf_counter() - started:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--trade-offs", default="0.3,1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=ROOT / "cache" / "features")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "selection")
    args = parser.parse_args()
    office = args.shared / "data" / "office31"
    weights = str(args.shared / "weights" / "mobilenet_v2-b0353104.pth")

    import tlcv
    from tlcv.experiments.adaptation_selection import summarise
    from tlcv.experiments.cells import CellLog

    for domain in ("amazon", "dslr", "webcam"):  # fill the cache once, before the workers
        tlcv.extract(office / domain, "mobilenet_v2", weights=weights, cache=args.cache)
    jobs = [
        {
            "task": task, "office": str(office), "out": str(args.out / task.replace("->", "2")),
            "methods": args.methods, "trade_offs": args.trade_offs, "seeds": args.seeds,
            "weights": weights, "epochs": args.epochs, "cache": str(args.cache),
        }
        for task in TASKS
    ]  # fmt: skip
    with mp.get_context("spawn").Pool(args.workers) as pool:
        for line in pool.imap_unordered(_task, jobs):
            print(line, flush=True)
    rows = [row for job in jobs for row in CellLog(Path(job["out"])).rows]
    summary = summarise(rows)
    per_task = {}
    for task, (source, target) in TASKS.items():
        mine = [r for r in rows if (r["source"], r["target"]) == (source, target)]
        per_task[task] = {r["validator"]: r["target_accuracy"] for r in summarise(mine)["table"]}
    result = {"date": time.strftime("%Y-%m-%d"), **vars(args), "summary": summary}
    result["per_task"] = per_task
    path = args.out / "selection.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    header = "| validator | " + " | ".join(TASKS) + " | average | rank corr. | gap closed |"
    print(header + "\n|" + "---|" * (len(TASKS) + 4))
    for row in summary["table"]:
        name = row["validator"]
        cells = [f"{100 * per_task[t].get(name, float('nan')):.1f}" for t in TASKS]
        print(
            f"| {name} | " + " | ".join(cells) + f" | {100 * row['target_accuracy']:.1f} | "
            f"{row.get('rank_correlation', '')} | {row.get('gap_closed', '')} |"
        )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
