"""Decode-worker priority (issue 11, item 12): idle and beside a competing job, one command:

    .venv/bin/python benchmarks/bench_priority.py            # ~15 min on 2 CPU cores

Decode workers used to run at nice 19. On an idle 2-core machine that keeps them from
preempting the network's OpenMP threads (+3% extraction throughput); beside any other busy
process they get ~1.5% of a core under Linux's CFS weights and the training loop starves.
For each worker nice level (TLCV_WORKER_NICE) this runs two real CLI workloads:

  dann:    `tlcv adapt` DANN, LeNet, MNIST -> USPS (full mode), 1 epoch, 1 decode worker
  extract: `tlcv extract` Office-31 dslr (498 JPEGs), MobileNetV2 224 px, cold feature cache

once on an idle machine and once beside a competitor (a 2-thread torch matmul loop, like
another training job). Reports wall seconds (each capped at --cap) and, per condition, the
ratio to nice 0 in the same run. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
COMPETITOR = (
    "import torch\ntorch.set_num_threads(2)\na = torch.randn(512, 512)\n"
    "while True:\n    a = torch.tanh(a @ a.T / 512)\n"
)


def workload(name: str, tmp: Path) -> list[str]:
    tlcv = [sys.executable, "-m", "tlcv.cli"]
    digits = SHARED / "data" / "digits"
    weights = SHARED / "weights" / "mobilenet_v2-b0353104.pth"
    if name == "dann":
        return [
            *tlcv,
            "adapt",
            "--source",
            str(digits / "mnist" / "train"),
            "--target",
            str(digits / "usps" / "train"),
            "--method",
            "dann",
            "--backbone",
            "lenet",
            "--mode",
            "full",
            "--epochs",
            "1",
            "--no-plots",
            "--augment",
            "none",
            "--optimizer",
            "sgd",
            "--lr",
            "0.01",
            "--num-workers",
            "1",
            "--out",
            str(tmp / "run"),
        ]
    return [
        *tlcv,
        "extract",
        "--data",
        str(SHARED / "data" / "office31" / "dslr"),
        "--backbone",
        "mobilenet_v2",
        "--weights",
        str(weights),
        "--num-workers",
        "1",
        "--cache",
        str(tmp / "cache"),
    ]


def timed(cmd: list[str], nice: int, cap: float) -> float | None:
    """Wall seconds of one CLI run, or None when it passed ``cap``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TLCV_WORKER_NICE": str(nice)}
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.decode()[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nice", default="0,5,10,19", help="worker nice levels to compare")
    ap.add_argument("--workloads", default="dann,extract")
    ap.add_argument("--cap", type=float, default=240.0, help="seconds before a run is cut")
    args = ap.parse_args()
    levels = [int(n) for n in args.nice.split(",")]
    rows: dict[tuple[str, str], dict[int, float | None]] = {}
    for name in args.workloads.split(","):
        for condition in ("idle", "busy"):
            competitor = None
            if condition == "busy":
                competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR])
                time.sleep(3)
            try:
                for nice in levels:
                    with tempfile.TemporaryDirectory() as tmp:
                        secs = timed(workload(name, Path(tmp)), nice, args.cap)
                    rows.setdefault((name, condition), {})[nice] = secs
                    print(f"{name} {condition} nice {nice}: {secs}", file=sys.stderr, flush=True)
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    header = " | ".join(f"nice {n}" for n in levels)
    print(f"| workload | machine | {header} |")
    print("|---|---|" + "---|" * len(levels))
    for (name, condition), by_level in rows.items():
        base = by_level.get(levels[0])
        cells = []
        for nice in levels:
            secs = by_level[nice]
            if secs is None:
                cells.append(f"> {args.cap:.0f} s")
            else:
                ratio = f" ({base / secs:.2f}x)" if base else ""
                cells.append(f"{secs:.1f} s{ratio}")
        print(f"| {name} | {condition} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
