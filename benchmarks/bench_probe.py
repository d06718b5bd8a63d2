"""Logistic-regression probe accuracy on Office-31 (issue 2), through tlcv's own API.

    .venv/bin/python benchmarks/bench_probe.py          # ~10 min on 2 CPU cores

Backbones: MobileNetV2 (../shared/weights) and EfficientNet-Lite0 (embedded weights), 224 px.
- within domain: stratified 80/20 split of each domain, 3 seeds, test accuracy mean +- std;
- across domains: train on all of the source domain, evaluate on all of the target domain.
C is chosen by cross-validation on the training split only (never on test or target labels).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import tlcv  # noqa: E402

DOMAINS = {"A": "amazon", "D": "dslr", "W": "webcam"}
TASKS = ["A->W", "D->W", "W->D", "A->D", "D->A", "W->A"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "probe.json")
    args = parser.parse_args()
    office = args.shared / "data" / "office31"
    backbones = {
        "mobilenet_v2": str(args.shared / "weights" / "mobilenet_v2-b0353104.pth"),
        "efficientnet_lite0": "imagenet",
    }
    results: dict = {"date": time.strftime("%Y-%m-%d"), "seeds": args.seeds}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for name, weights in backbones.items():
            row: dict = {"within": {}, "cross": {}}
            common = dict(backbone=name, weights=weights, cache=str(cache), val_fraction=0.0)
            for letter, domain in DOMAINS.items():
                accs = []
                for seed in range(args.seeds):
                    run = tlcv.train(
                        office / domain,
                        Path(tmp) / f"{name}-{domain}-{seed}",
                        test_fraction=0.2,
                        seed=seed,
                        **common,
                    )
                    accs.append(
                        json.loads((run.path / "metrics.json").read_text())["test"]["accuracy"]
                    )
                row["within"][letter] = (statistics.mean(accs), statistics.pstdev(accs))
                print(f"{name} within {domain}: {100 * statistics.mean(accs):.1f}", flush=True)
            for letter, domain in DOMAINS.items():
                run = tlcv.train(
                    office / domain,
                    Path(tmp) / f"{name}-{domain}-all",
                    test_fraction=0.0,
                    seed=0,
                    **common,
                )
                for task in TASKS:
                    if task.startswith(letter):
                        target = DOMAINS[task[-1]]
                        m = tlcv.evaluate(run, office / target, cache=str(cache))
                        row["cross"][task] = m["accuracy"]
                        print(f"{name} {task}: {100 * m['accuracy']:.1f}", flush=True)
            row["within_avg"] = statistics.mean(v[0] for v in row["within"].values())
            row["cross_avg"] = statistics.mean(row["cross"].values())
            results[name] = row
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    head = "| backbone | " + " | ".join(f"within {d}" for d in DOMAINS) + " | within avg | "
    head += " | ".join(TASKS) + " | cross avg |"
    print("\n" + head + "\n|" + "---|" * (head.count("|") - 1))
    for name in backbones:
        r = results[name]
        cells = [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in r["within"].values()]
        cells.append(f"{100 * r['within_avg']:.1f}")
        cells += [f"{100 * r['cross'][t]:.1f}" for t in TASKS]
        cells.append(f"{100 * r['cross_avg']:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
