"""Segmentation domain adaptation on CamVid, daylight -> dusk (issue 31), on 2 CPU cores.

Rerun: python benchmarks/bench_seg_adapt.py [--seeds 0,1] [--methods advent,fda,...]

Source: the daylight frames of CamVid train + val (sequences 0006R0, 0016E5; 406 frames, 10%
held out for selection). Target: the 62 dusk frames of train (0001TP), unlabelled during
adaptation; their masks score the result once, at the end, as unsupervised adaptation papers
report on the target set. Per seed: one source-only run (pretrained MobileNetV2 + FPN), then
every method starting from it (``--init``) with the guard on, each through `tlcv adapt` (the
CLI), epoch chosen by ``--select`` (bnm: batch nuclear-norm of target pixel predictions).

Reported: target mIoU (95% interval) and per-class IoU of every run, wall time, the guard's
verdict; each validator's pick among all runs of a seed (the run whose kept epoch it scores
highest: no target label read) next to source-only and the ORACLE (the best run by target
mIoU, and the best epoch of any run on target labels: neither is an honest choice).
Finished runs are kept (an interrupted benchmark continues where it was).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DAY, DUSK = "0006R0_*,0016E5_*", "0001TP_*"
VALIDATORS = ("bnm", "im", "entropy", "snd", "dev", "source_val")
# The --trade-off grid of each method, fixed before any run: the validators choose among all
# runs of a seed (method x trade-off, and source-only), never the target masks. Adversarial
# and entropy terms at 0.01 and 0.1 of the pixel loss (the papers use 0.001 over 100k+
# steps), pseudo-labels at 0.3 and full weight (CBST), FDA at the paper's windows 0.01 and
# 0.05 of the side (trade-off 1 and 5), and FDA + pseudo-labels as the FDA paper pairs them.
GRID = {"adabn": (1.0,), "fda": (1.0, 5.0), "self-training": (0.3, 1.0),
        "advent": (0.01, 0.1), "output-adversarial": (0.01, 0.1),
        "fda+self-training": (1.0,)}  # fmt: skip


def _tlcv(*args) -> None:
    command = [sys.executable, "-m", "tlcv.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr[-2000:]}")


def run_one(args, method: str, seed: int, init: Path | None, trade_off: float = 1.0) -> dict:
    out = args.runs / (f"{method}-s{seed}" if init is None else f"{method}-t{trade_off:g}-s{seed}")
    command = ["adapt", "--source", args.camvid, "--target", args.camvid / "train",
               "--source-include", DAY, "--target-include", DUSK, "--ignore-index", "11",
               "--method", method, "--out", out, "--mode", "full", "--decoder", args.decoder,
               "--backbone", "mobilenet_v2", "--weights", args.weights,
               "--image-size", args.image_size, "--batch-size", args.batch_size,
               "--seed", seed, "--oracle", "--overwrite",
               "--lr", args.lr if init is None else args.adapt_lr,
               "--epochs", args.source_epochs if init is None else args.adapt_epochs,
               "--trade-off", trade_off]  # fmt: skip
    if init is not None:
        command += ["--init", init]
    timing = out / "bench_seconds.txt"  # the training's wall time, kept for reruns
    if not (out / "model.json").is_file():
        start = time.perf_counter()
        _tlcv(*command)
        timing.write_text(f"{time.perf_counter() - start:.1f}\n")
    seconds = float(timing.read_text()) if timing.is_file() else float("nan")
    metrics = json.loads((out / "metrics.json").read_text())
    target = metrics["target"]
    with open(out / "history.csv", newline="") as fh:
        history = list(csv.DictReader(fh))
    kept = metrics["selection"]["best_epoch"]
    row = next((r for r in history if int(r["epoch"]) == kept), history[-1])
    health = metrics.get("health", {})
    return {
        "method": method,
        "trade_off": trade_off,
        "seed": seed,
        "target_miou": target["miou"],
        "target_interval": target.get("intervals", {}).get("miou"),
        "per_class": {c["class"]: c["iou"] for c in target["per_class"]},
        "source_miou": metrics["source"]["miou"],
        "init_target_miou": metrics.get("init_target", {}).get("miou"),
        "seconds": round(seconds, 1),
        "kept_epoch": kept,
        "validators": {v: _float(row.get(f"sel_{v}")) for v in VALIDATORS},
        "oracle_epoch_miou": (metrics.get("oracle") or {}).get("target_miou"),
        "guard_fired": bool(health.get("fired")),
        "guard_kept": health.get("kept", "adapted"),
        "guard_reasons": health.get("reasons", []),
    }


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def picks(rows: list[dict]) -> dict:
    """Per validator: the run (of one seed) whose kept model it scores highest. A run whose
    guard kept the source-only model scores as source-only (it is that model)."""
    source_only = next(r for r in rows if r["method"] == "source-only")
    out = {}
    for v in VALIDATORS:

        def score(r, v=v):
            kept = source_only if r["guard_kept"] == "source-only" else r
            return kept["validators"].get(v)

        scored = [r for r in rows if score(r) is not None]
        if scored:
            best = max(scored, key=score)
            out[v] = {"method": f"{best['method']}@{best['trade_off']:g}",
                      "target_miou": best["target_miou"]}  # fmt: skip
    return out


def summary(results: list[dict], seeds: list[int]) -> dict:
    cells = sorted({(r["method"], r["trade_off"]) for r in results},
                   key=lambda c: (c[0] != "source-only", c))  # fmt: skip
    table = {}
    for method, trade_off in cells:
        rows = [r for r in results if (r["method"], r["trade_off"]) == (method, trade_off)]
        m = method if method == "source-only" else f"{method}@{trade_off:g}"
        table[m] = {
            "target_miou_mean": statistics.mean(r["target_miou"] for r in rows),
            "per_seed": [round(r["target_miou"], 4) for r in rows],
            "seconds_mean": statistics.mean(r["seconds"] for r in rows),
            "guard_fired": sum(r["guard_fired"] for r in rows),
            "oracle_epoch_mean": statistics.mean(r["oracle_epoch_miou"] or 0 for r in rows),
        }
    by_seed = {s: [r for r in results if r["seed"] == s] for s in seeds}
    validator_picks = {s: picks(rows) for s, rows in by_seed.items()}
    so = {s: next(r["target_miou"] for r in rows if r["method"] == "source-only")
          for s, rows in by_seed.items()}  # fmt: skip
    gains = {}
    for v in VALIDATORS:
        chosen = [validator_picks[s][v]["target_miou"] - so[s] for s in seeds
                  if v in validator_picks[s]]  # fmt: skip
        if len(chosen) == len(seeds):
            gains[v] = statistics.mean(chosen)
    worst = min(r["target_miou"] - so[r["seed"]] for r in results if r["method"] != "source-only")
    oracle_run = {s: max(r["target_miou"] for r in rows) for s, rows in by_seed.items()}
    return {
        "methods": table,
        "validator_picks": validator_picks,
        "validator_gain_over_source_only": gains,
        "worst_adapted_minus_source_only": worst,
        "oracle_best_run_minus_source_only": statistics.mean(oracle_run[s] - so[s] for s in seeds),
    }


def markdown(results: list[dict], summ: dict) -> str:
    lines = ["| method@trade-off | target mIoU per seed | mean | vs source-only | s/run | "
             "guard fired | ORACLE epoch |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    base = summ["methods"]["source-only"]["target_miou_mean"]
    for m, t in summ["methods"].items():
        lines.append(
            f"| {m} | {', '.join(f'{x:.3f}' for x in t['per_seed'])} | "
            f"{t['target_miou_mean']:.3f} | {100 * (t['target_miou_mean'] - base):+.1f} | "
            f"{t['seconds_mean']:.0f} | {t['guard_fired']} | {t['oracle_epoch_mean']:.3f} |"
        )
    lines += ["", "| validator | pick per seed | mean gain over source-only (points) |",
              "|---|---|---|"]  # fmt: skip
    for v, gain in summ["validator_gain_over_source_only"].items():
        chosen = ", ".join(
            f"{p[v]['method']} ({p[v]['target_miou']:.3f})"
            for p in summ["validator_picks"].values()
        )
        lines.append(f"| {v} | {chosen} | {100 * gain:+.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--methods", default=",".join(GRID))
    parser.add_argument("--image-size", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--adapt-lr", type=float, default=1e-4, help="a tenth: the model is trained"
    )
    parser.add_argument("--decoder", default="fpn")
    parser.add_argument("--source-epochs", type=int, default=6)
    parser.add_argument("--adapt-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "seg_adapt.json")
    args = parser.parse_args()
    args.camvid = args.shared / "data" / "camvid"
    args.weights = args.shared / "weights" / "mobilenet_v2-b0353104.pth"
    args.runs = args.out.parent / "seg_adapt_runs"
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for seed in seeds:
        source_only = run_one(args, "source-only", seed, None)
        results.append(source_only)
        print(json.dumps(source_only), flush=True)
        for method in args.methods.split(","):
            for trade_off in GRID[method]:
                init = args.runs / f"source-only-s{seed}"
                row = run_one(args, method, seed, init, trade_off)
                results.append(row)
                print(json.dumps(row), flush=True)
    summ = summary(results, seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                    "runs": results, "summary": summ}, indent=1))  # fmt: skip
    print(markdown(results, summ))


if __name__ == "__main__":
    main()
