"""Detection by transfer on GTSDB road scenes (4 super-classes), fixed 400 / 100 split.

Rerun: python benchmarks/bench_detection.py [--parts speed table] [--image-size 800]
       [--fpn-channels 128 --train-crop 256 --epochs 8 --val-fraction 0.05]   (the CPU recipe)

1. speed: training images/s of tlcv's engine vs a plain PyTorch loop over the same torchvision
   detector, loader, optimiser groups and batch size (steady state, medians of 2 rounds), and
   inference frames/s on full-resolution (1360x800) scenes.
2. table: mAP@0.5 and mAP@[.5:.95] on the 100 held-out scenes for finetune / features /
   scratch (MobileNetV2 from ../shared/weights, one detector, the same epochs, scale and recipe
   for each), per seed. The 100 scenes are a test split: the epoch is chosen on a val split
   carved from the 400 (never on the 100).

A detector at full resolution trains at seconds per image on 2 CPU cores: this benchmark is
meant for a GPU, or for a reduced --image-size (say so with the figures).
Cells already in the output file are kept (an interrupted benchmark continues where it was).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from steady import StepTimer, plain_images_per_s  # noqa: E402

SUPER = {
    "prohibitory": [*range(6), 7, 8, 9, 10, 15, 16],
    "danger": [11, *range(18, 32)],
    "mandatory": list(range(33, 41)),
    "other": [6, 12, 13, 14, 17, 32, 41, 42],
}
STRATEGIES = ("finetune", "features", "scratch")


def class_map(folder: Path) -> Path:
    path = folder / "super_classes.csv"
    rows = "".join(f"{i},{name}\n" for name, ids in SUPER.items() for i in ids)
    path.write_text("from,to\n" + rows)
    return path


def train_cell(args, strategy: str, seed: int, mapping: Path) -> dict:
    out = args.runs / f"{args.detector}-{strategy}-s{seed}"
    command = [
        sys.executable,
        "-m",
        "tlcv.cli",
        "train",
        "--task",
        "detection",
        "--data",
        str(args.shared / "data" / "gtsdb" / "train"),
        "--class-map",
        str(mapping),
        "--out",
        str(out),
        "--backbone",
        "mobilenet_v2",
        "--weights",
        str(args.shared / "weights" / "mobilenet_v2-b0353104.pth"),
        "--detector",
        args.detector,
        "--strategy",
        strategy,
        "--epochs",
        str(args.epochs),
        "--image-size",
        str(args.image_size),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--fpn-channels",
        str(args.fpn_channels),
        *(["--train-crop", str(args.train_crop)] if args.train_crop else []),
        "--seed",
        str(seed),
        "--split-seed",
        "0",
        "--test-fraction",
        "0.2",
        "--val-fraction",
        str(args.val_fraction),
        "--patience",
        "0",
        "--overwrite",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr[-2000:]}")
    test = json.loads((out / "metrics.json").read_text())["test"]
    return {
        "strategy": strategy,
        "seed": seed,
        "map50": test["map50"],
        "map": test["map"],
        "recall": test["recall"],
        "n_test": test["n"],
        "seconds": time.perf_counter() - start,
        "per_class": test["per_class"],
    }


def speed(args, tmp: Path) -> dict:
    from tlcv.backbones import create_backbone
    from tlcv.engine import FreezeSchedule, Recipe, RunArtifacts, TransferModule, build_trainer
    from tlcv.tasks.detection.data import discover_detection
    from tlcv.tasks.detection.loading import detection_loader
    from tlcv.tasks.detection.model import build_model
    from tlcv.tasks.detection.objective import DetectionObjective, as_float

    source = discover_detection(args.shared / "data/gtsdb/train", class_map=class_map(tmp))
    items, classes = source.all_items()[:24], source.classes
    weights = str(args.shared / "weights" / "mobilenet_v2-b0353104.pth")

    def parts():
        backbone = create_backbone("mobilenet_v2", weights)
        spec = {
            "detector": args.detector,
            "num_classes": len(classes),
            "image_size": args.image_size,
            "max_size": round(args.image_size * 1.7),
            "anchors": [16, 32, 64, 128, 256],
            "fpn_channels": args.fpn_channels,
        }
        model, _ = build_model(backbone, spec)
        module = TransferModule(
            model, len(classes), Recipe(epochs=2, warmup_epochs=0), DetectionObjective()
        )
        loader = detection_loader(
            items,
            classes,
            args.image_size,
            augment="light",
            batch_size=args.batch_size,
            seed=0,
            num_workers=1,
            crop=args.train_crop,
        )
        return module, loader

    def plain() -> float:
        module, loader = parts()
        model = module.model.train()
        opt = torch.optim.AdamW(module.param_groups(), lr=1e-3)

        def step(images, targets):
            loss = sum(model(as_float(images, torch.device("cpu")), targets).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return plain_images_per_s(loader, step)

    def engine() -> float:
        module, loader = parts()
        timer = StepTimer()
        trainer = build_trainer(
            tmp / "speed",
            epochs=2,
            has_val=False,
            callbacks=[FreezeSchedule(), RunArtifacts(tmp / "speed"), timer],
        )
        trainer.fit(module, loader)
        return timer.images_per_s

    plains, engines = [], []
    for _ in range(2):
        plains.append(plain())
        engines.append(engine())
        print(f"plain {plains[-1]:.3f} img/s, tlcv {engines[-1]:.3f} img/s", flush=True)
    p, e = statistics.median(plains), statistics.median(engines)
    return {
        "tlcv_img_s": e,
        "plain_img_s": p,
        "ratio": e / p,
        "plain_runs": plains,
        "tlcv_runs": engines,
    }


def inference_fps(args, run_dir: Path, frames: int = 10) -> float:
    from tlcv.runs import load_run
    from tlcv.tasks.detection.evaluate import _read, detect

    model = load_run(run_dir).model()
    files = sorted((args.shared / "data/gtsdb/train/images").iterdir())[:frames]
    images = [_read(str(p)) for p in files]
    detect(model, images[0], torch.device("cpu"))
    start = time.perf_counter()
    for image in images:
        detect(model, image, torch.device("cpu"))
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--parts", nargs="*", default=["speed", "table"])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--detector", default="fasterrcnn")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--image-size", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--fpn-channels", type=int, default=256)
    parser.add_argument("--train-crop", type=int, default=None)
    parser.add_argument("--runs", type=Path, default=ROOT / "bench_out" / "detection_runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "detection.json")
    args = parser.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    keys = ("detector", "epochs", "image_size", "batch_size", "lr", "fpn_channels", "train_crop")
    keys += ("val_fraction",)
    recipe = {k: getattr(args, k) for k in keys}
    if result.get("recipe", recipe) != recipe:
        result = {}
    result.update(recipe=recipe, date=time.strftime("%Y-%m-%d"), threads=torch.get_num_threads())
    cells = result.setdefault("cells", [])

    def save() -> None:
        groups: dict[str, list[float]] = {}
        for c in cells:
            groups.setdefault(c["strategy"], []).append(c["map50"])
        result["summary"] = {
            k: {"map50_mean": statistics.mean(v), "seeds": len(v)} for k, v in groups.items()
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "speed" in args.parts:
            result["speed"] = speed(args, tmp)
            save()
        mapping = class_map(args.runs.parent if args.runs.parent.is_dir() else tmp)
        if "table" in args.parts:
            for seed in (int(s) for s in args.seeds.split(",")):
                for strategy in STRATEGIES:
                    if any((c["strategy"], c["seed"]) == (strategy, seed) for c in cells):
                        continue
                    cells.append(train_cell(args, strategy, seed, mapping))
                    print(
                        f"{strategy:9s} seed {seed}: mAP@0.5 {cells[-1]['map50']:.3f}", flush=True
                    )
                    save()
        reference = args.runs / f"{args.detector}-finetune-s0"
        if (reference / "model.json").is_file():
            result["inference_fps_full_resolution"] = inference_fps(args, reference)
        save()
    print(json.dumps(result.get("summary"), indent=2))


if __name__ == "__main__":
    main()
