"""Study label-free negative-transfer checks offline, on the arrays `bench_guard.py --dump`
saved (both models' logits, features, labels per run): seconds per check instead of an hour
of adaptation. Target labels are read only to score each check, never by it.

    .venv/bin/python benchmarks/guard_study.py bench_out/guard_dump
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

HARM = 0.02


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


SOURCES = {
    "A": "office31/amazon",
    "D": "office31/dslr",
    "W": "office31/webcam",
    "U": "digits/usps/train",
    "M": "digits/mnist/train",
}


def source_train_features(task: str, seed: int, shared: Path, cache: Path, backbone: str) -> tuple:
    """The starting features and class indices of the run's source training split (the same
    split tlcv adapt made: stratified, --val-fraction 0.1, the run's seed), from the cache."""
    import tlcv
    from tlcv.data.sources import discover
    from tlcv.data.splits import stratified_split

    name = task.rstrip("~").split("->")[0]
    folder = shared / "data" / SOURCES[name]
    from bench_guard import WEIGHT_FILES

    found = tlcv.extract(
        folder,
        backbone,
        weights=str(shared / "weights" / WEIGHT_FILES[backbone]),
        image_size=32 if name in "UM" else None,
        cache=cache,
    )
    by_path = {str(it.path): row for it, row in zip(found.items, found.features, strict=True)}
    classes = sorted(set(found.labels))
    train, _ = stratified_split(discover(folder).all_items(), 0.1, seed)
    rows = np.stack([by_path[str(it.path)] for it in train])
    return rows, np.array([classes.index(it.label) for it in train])


def load(folder: Path, shared: Path, cache: Path, backbone: str) -> list[dict]:
    runs, features = [], {}
    for path in sorted(folder.glob("*.npz")):
        task, method, seed = path.stem.rsplit("_", 2)
        arrays = dict(np.load(path))
        if "features_t" in arrays:
            features[task] = arrays.pop("features_t").astype(np.float32)
        runs.append({"task": task, "method": method, "seed": int(seed), **arrays})
    sources: dict[tuple, tuple] = {}
    for run in runs:
        run["features_t"] = features[run["task"]]
        run["acc"] = float(np.mean(run["logits_t"].argmax(1) == run["y_t"]))
        run["ref_acc"] = float(np.mean(run["ref_logits_t"].argmax(1) == run["y_t"]))
        key = (run["task"].rstrip("~").split("->")[0], run["seed"])
        if key not in sources:
            sources[key] = source_train_features(run["task"], run["seed"], shared, cache, backbone)
        run["features_s"], run["labels_s"] = sources[key]
        assert np.array_equal(np.sort(run["labels_s"]), np.sort(run["y_train"]))
    return runs


def product_check(run: dict, arbiter: bool = True) -> bool:
    """tlcv's own decision (health.check + health.verdict), given what the run held."""
    from tlcv.adaptation.health import check, verdict

    n = run["logits_t"].shape[1]
    voters = (run["features_t"], run["features_s"], run["labels_s"]) if arbiter else None
    health = check(
        softmax(run["logits_t"]), run["y_train"], n, softmax(run["ref_logits_t"]), voters
    )
    return bool(verdict(health, [str(i) for i in range(n)]))


def summarise(runs: list[dict], fires: list[bool], name: str) -> str:
    """One line per check: fires, harmful runs caught, mean gain over the reference without and
    with the fallback, the worst run left, and the gains > 2 points the fallback would remove."""
    delta = [r["acc"] - r["ref_acc"] for r in runs]
    guarded = [0.0 if f else d for f, d in zip(fires, delta, strict=True)]
    harmful = [d < -HARM for d in delta]
    missed = [
        f"{r['task']} {r['method']} {r['seed']} ({100 * d:+.1f})"
        for r, d, f in zip(runs, delta, fires, strict=True)
        if d < -HARM and not f
    ]
    removed = [
        f"{r['task']} {r['method']} {r['seed']} ({100 * d:+.1f})"
        for r, d, f in zip(runs, delta, fires, strict=True)
        if d > HARM and f
    ]
    return (
        f"{name:30} fired {sum(fires):3}/{len(runs)}  harmful caught "
        f"{sum(h and f for h, f in zip(harmful, fires, strict=True))}/{sum(harmful)}  "
        f"mean gain {100 * statistics.mean(delta):+.2f} -> {100 * statistics.mean(guarded):+.2f}"
        f"  worst {100 * min(guarded):+.1f}  gains removed {len(removed)}\n"
        f"    missed: {', '.join(missed) or '-'}\n    removed: {', '.join(removed) or '-'}"
    )


def arbiter_check(margin: float, neighbours: int, lead_sd: float = 0.0) -> Callable[[dict], bool]:
    """The arbiter alone, at another neighbour count, margin or required lead (sensitivity)."""
    from tlcv.adaptation.arbiter import arbitrate

    def fire(run: dict) -> bool:
        vote = arbitrate(
            run["logits_t"].argmax(1),
            run["ref_logits_t"].argmax(1),
            run["features_t"],
            run["features_s"],
            run["labels_s"],
            neighbours,
        )
        return vote["estimated_gain"] < -margin and vote["source_only_lead_sd"] >= lead_sd

    return fire


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--cache", type=Path, default=ROOT / "cache" / "features")
    parser.add_argument("--methods", default=None, help="only these methods (comma-separated)")
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument(
        "--sensitivity", action="store_true", help="also the arbiter at other k and margins"
    )
    args = parser.parse_args()
    runs = load(args.folder, args.shared, args.cache, args.backbone)
    if args.methods:
        runs = [r for r in runs if r["method"] in args.methods.split(",")]
    checks: dict[str, Callable[[dict], bool]] = {
        "histogram symptoms only": lambda r: product_check(r, arbiter=False),
        "tlcv (histogram + arbiter)": product_check,
        # the setting first chosen on seed 0 (k = 10, any estimated loss), kept for the record
        "or histogram: k=10 < -0.0": lambda r: product_check(r, False) or arbiter_check(0, 10)(r),
    }
    if args.sensitivity:
        for neighbours in (5, 10, 20):
            for margin in (0.0, 0.005, 0.01):
                for lead in (0.0, 1.0, 1.64):
                    checks[f"arbiter alone k={neighbours} < -{margin} lead {lead} sd"] = (
                        arbiter_check(margin, neighbours, lead)
                    )
    groups = {
        "no label shift": [r for r in runs if not r["task"].endswith("~")],
        "label shift": [r for r in runs if r["task"].endswith("~")],
    }
    decided = {name: [check(r) for r in runs] for name, check in checks.items()}
    index = {id(r): i for i, r in enumerate(runs)}
    for group, rs in groups.items():
        if not rs:
            continue
        print(f"## {group}: {len(rs)} runs")
        for name, fires in decided.items():
            print(summarise(rs, [fires[index[id(r)]] for r in rs], name))
    print("\n## per method, tlcv's decision (bench_guard's table)")
    from bench_guard import summarise as method_table

    rows = [
        {
            "method": r["method"],
            "target_accuracy": r["acc"],
            "source_only_accuracy": r["ref_acc"],
            "fired": fired,
        }
        for r, fired in zip(runs, decided["tlcv (histogram + arbiter)"], strict=True)
    ]
    for shifted in (False, True):
        chosen = [
            row for row, r in zip(rows, runs, strict=True) if r["task"].endswith("~") == shifted
        ]
        if chosen:
            print(f"\n### {'label shift' if shifted else 'no label shift'}")
            print(method_table(chosen))


if __name__ == "__main__":
    main()
