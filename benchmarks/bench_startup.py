"""CLI start-up and fully cached work (issue 17), as whole processes, ratios in one run.

    .venv/bin/python benchmarks/bench_startup.py            # ~3 min on 2 CPU cores

Measures (median of --repeats wall times, each command a fresh process, the machine idle):
  1. `tlcv --help`, `tlcv train --help`, `tlcv models`, `tlcv --version`, beside
     `python -c "import torch"` in the same run (goals: < 0.5 s, < 0.5 s, < 1.5 s)
  2. `tlcv extract` on Office-31 amazon (MobileNetV2, 224 px): first run into an empty cache,
     then fully cached re-runs; ratio cached / first (goal <= 0.03)
  3. `tlcv train --strategy features` on the same data: first run (features cached by 2) and a
     re-run into a new run folder; ratio re-run / first-with-extraction
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TLCV = str(Path(sys.executable).with_name("tlcv"))


def wall(cmd: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return elapsed


def median_wall(cmd: list[str], repeats: int, env: dict | None = None) -> float:
    wall(cmd, env)  # warm the OS file cache (imports), not counted
    return statistics.median(wall(cmd, env) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/office31/amazon"))
    parser.add_argument(
        "--weights", default=str(ROOT.parent / "shared/weights/mobilenet_v2-b0353104.pth")
    )
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    results: dict = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    startup = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "tlcv --help": [TLCV, "--help"],
        "tlcv train --help": [TLCV, "train", "--help"],
        "tlcv models": [TLCV, "models"],
        "tlcv --version": [TLCV, "--version"],
    }
    results["startup_s"] = {
        name: round(median_wall(cmd, args.repeats), 3) for name, cmd in startup.items()
    }
    print(json.dumps(results["startup_s"], indent=2), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TLCV_CACHE": str(Path(tmp) / "cache")}
        common = ["--data", args.data, "--backbone", "mobilenet_v2", "--weights", args.weights]
        extract = [TLCV, "extract", *common]
        first = wall(extract, env)
        cached = statistics.median(wall(extract, env) for _ in range(args.repeats))
        results["extract"] = {
            "first_s": round(first, 2),
            "cached_s": round(cached, 3),
            "cached_over_first": round(cached / first, 4),
        }
        print(json.dumps(results["extract"]), flush=True)

        train = [TLCV, "train", *common, "--strategy", "features"]
        env_fresh = {**os.environ, "TLCV_CACHE": str(Path(tmp) / "cache-train")}
        first_train = wall([*train, "--out", str(Path(tmp) / "run0")], env_fresh)
        reruns = [
            wall([*train, "--out", str(Path(tmp) / f"run{i}")], env_fresh) for i in range(1, 4)
        ]
        results["train_features"] = {
            "first_s": round(first_train, 2),
            "rerun_s": round(statistics.median(reruns), 2),
            "rerun_over_first": round(statistics.median(reruns) / first_train, 4),
        }
        print(json.dumps(results["train_features"]), flush=True)

    out = ROOT / "bench_out" / "startup.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
