"""Fine-tuning benchmark (issue 3), one command, on 2 CPU cores ~45 min:

    .venv/bin/pip install fastai        # for the comparison only; not a tlcv dependency
    .venv/bin/python benchmarks/bench_finetune.py

1. Accuracy, MobileNetV2 (../shared/weights), 128 px, same epochs: fine-tune vs feature
   extraction (logistic regression) vs scratch, 3 seeds, on Office-31 amazon (stratified 80/20)
   and a CIFAR-10 subset (100 train images per class, the 1000 test images).
2. tlcv vs fastai's vision_learner(...).fine_tune(...): same data split, backbone, weights,
   image size and epochs (1 frozen + the rest unfrozen); wall-time ratio and accuracy difference.
3. Engine overhead: images/s of a tlcv fine-tuning epoch vs a plain PyTorch loop over the same
   model, batch size, data loader and optimiser groups (second epoch of each, in this run).
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

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import tlcv  # noqa: E402
from tlcv.backbones import create_backbone  # noqa: E402
from tlcv.data import discover, make_splits, normalize  # noqa: E402
from tlcv.engine import Recipe, TransferModule, labelled_loader  # noqa: E402
from tlcv.heads.model import ClassifierModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steady import StepTimer, plain_images_per_s  # noqa: E402


def test_accuracy(run) -> float:
    return json.loads((run.path / "metrics.json").read_text())["test"]["accuracy"]


def accuracy_table(args, weights: str, tmp: Path) -> dict:
    data = {
        "office31_amazon": (args.shared / "data/office31/amazon", {"test_fraction": 0.2}),
        "cifar10_subset": (args.shared / "data/cifar10", {"per_class": 100}),
    }
    common = dict(
        backbone="mobilenet_v2",
        weights=weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        cache=str(tmp / "cache"),
    )
    engine = dict(epochs=args.epochs, patience=None)
    table: dict = {}
    for name, (path, split) in data.items():
        table[name] = {}
        for strategy, extra in (
            ("features", {}),
            ("finetune", {**engine, "freeze_epochs": 1}),
            ("scratch", engine),
        ):
            accs, secs = [], []
            for seed in range(args.seeds):
                start = time.perf_counter()
                run = tlcv.train(
                    path,
                    tmp / f"{name}-{strategy}-{seed}",
                    strategy=strategy,
                    seed=seed,
                    **common,
                    **split,
                    **extra,
                )
                secs.append(time.perf_counter() - start)
                accs.append(test_accuracy(run))
                print(
                    f"{name} {strategy} seed {seed}: {100 * accs[-1]:.1f} ({secs[-1]:.0f} s)",
                    flush=True,
                )
            table[name][strategy] = {
                "mean": statistics.mean(accs),
                "std": statistics.pstdev(accs),
                "runs": accs,
                "seconds_mean": statistics.mean(secs),
            }
    return table


FASTAI_SCRIPT = r"""
import json, sys, time
from pathlib import Path
from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, FuncSplitter, Resize,
    aug_transforms, Normalize, imagenet_stats, vision_learner, accuracy)
from torch import nn
from torchvision.models import mobilenet_v2
spec = json.loads(Path(sys.argv[1]).read_text())
test = set(spec["test"])
label = dict(zip(spec["train"] + spec["test"], spec["train_y"] + spec["test_y"]))
block = DataBlock(blocks=(ImageBlock, CategoryBlock), get_items=lambda _: [Path(p) for p in label],
                  get_y=lambda p: label[str(p)], splitter=FuncSplitter(lambda p: str(p) in test),
                  item_tfms=Resize(spec["size"]),
                  batch_tfms=[*aug_transforms(size=spec["size"], min_scale=0.35),
                              Normalize.from_stats(*imagenet_stats)])
dls = block.dataloaders(Path("."), bs=spec["batch"], num_workers=spec["workers"])
def mobilenet_v2_body(pretrained=True):
    # fastai cuts a body at its last pooling child; torchvision's MobileNetV2 pools in forward()
    # (and vision_learner does not pass cut= on), so give it the pooling layer as a child.
    net = mobilenet_v2(weights="IMAGENET1K_V1" if pretrained else None)
    return nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1))
learn = vision_learner(dls, mobilenet_v2_body, metrics=accuracy, pretrained=True)
start = time.perf_counter()
learn.fine_tune(spec["epochs"] - 1, freeze_epochs=1)
seconds = time.perf_counter() - start
print(json.dumps({"accuracy": float(learn.validate()[1]), "seconds": seconds}))
"""


def versus_fastai(args, weights: str, tmp: Path) -> dict | None:
    try:
        import fastai  # noqa: F401
    except ImportError:
        print("fastai not installed: skipping the comparison (pip install fastai)")
        return None
    splits = make_splits(
        discover(args.shared / "data/office31/amazon"), val_fraction=0.0, test_fraction=0.2, seed=0
    )
    spec = {
        "train": [i.path for i in splits.train],
        "train_y": [i.label for i in splits.train],
        "test": [i.path for i in splits.test],
        "test_y": [i.label for i in splits.test],
        "size": args.image_size,
        "batch": args.batch_size,
        "epochs": args.epochs,
        "workers": 1,
    }
    (tmp / "spec.json").write_text(json.dumps(spec))
    (tmp / "fa.py").write_text(FASTAI_SCRIPT)
    # fastai loads torchvision's pretrained weights from the hub cache: import the shared file.
    env = {**os.environ, "TORCH_HOME": str(tmp / "torch-home"), "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(
        [sys.executable, "-m", "tlcv.cli", "weights", "import", weights],
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [sys.executable, str(tmp / "fa.py"), str(tmp / "spec.json")],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    if done.returncode != 0:
        print(done.stderr[-3000:])
        return None
    fa = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"fastai: {100 * fa['accuracy']:.1f} in {fa['seconds']:.0f} s", flush=True)
    start = time.perf_counter()
    run = tlcv.train(
        args.shared / "data/office31/amazon",
        tmp / "vs-fastai",
        strategy="finetune",
        backbone="mobilenet_v2",
        weights=weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        freeze_epochs=1,
        val_fraction=0.0,
        test_fraction=0.2,
        seed=0,
        patience=None,
        num_workers=1,
    )
    seconds = time.perf_counter() - start
    acc = test_accuracy(run)
    print(f"tlcv: {100 * acc:.1f} in {seconds:.0f} s", flush=True)
    return {
        "fastai_accuracy": fa["accuracy"],
        "fastai_seconds": fa["seconds"],
        "tlcv_accuracy": acc,
        "tlcv_seconds": seconds,
        "time_ratio": seconds / fa["seconds"],
        "accuracy_diff_points": 100 * (acc - fa["accuracy"]),
    }


def engine_overhead(args, weights: str, tmp: Path, rounds: int = 2) -> dict:
    """Steady-state images/s in the second epoch: tlcv's Lightning engine vs a hand-written loop
    over the same model, data loader, optimiser groups and batch size. The two alternate
    ``rounds`` times (this machine drifts by 10-20% over minutes) and the medians are compared;
    epoch-end checkpoint writes are reported separately."""
    from tlcv.engine import FreezeSchedule, RunArtifacts, build_trainer

    items = discover(args.shared / "data/office31/amazon").all_items()[::4][:512]
    classes = sorted({i.label for i in items})
    skip = 2  # batches at the start of the epoch (worker warm-up) are not timed

    def parts():
        net = create_backbone("mobilenet_v2", weights=weights, image_size=args.image_size)
        model = ClassifierModel(net, torch.nn.Linear(net.feature_dim, len(classes)))
        module = TransferModule(model, len(classes), Recipe(epochs=2, warmup_epochs=0))
        loader = labelled_loader(
            items,
            classes,
            net.preprocessing,
            augment="light",
            batch_size=args.batch_size,
            seed=0,
            shuffle=True,
            num_workers=1,
        )
        return module, loader

    def plain() -> float:
        module, loader = parts()
        model = module.model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.AdamW(module.param_groups(), lr=1e-3)

        def step(x, y):
            x = normalize(x, model.backbone.preprocessing, torch.device("cpu"), True)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return plain_images_per_s(loader, step, skip)

    def engine() -> tuple[float, float]:
        module, loader = parts()
        timer, artifacts = StepTimer(skip), RunArtifacts(tmp / "overhead")
        trainer = build_trainer(
            tmp / "overhead",
            epochs=2,
            has_val=False,
            callbacks=[FreezeSchedule(), artifacts, timer],
        )
        trainer.fit(module, loader)
        t = [row["seconds"] for row in artifacts.history]
        return timer.images_per_s, len(items) / (t[1] - t[0])

    plains, engines, epochs = [], [], []
    for _ in range(rounds):
        plains.append(plain())
        steady, whole = engine()
        engines.append(steady)
        epochs.append(whole)
        print(
            f"plain {plains[-1]:.1f} img/s, engine {engines[-1]:.1f} img/s (whole epoch with "
            f"checkpoint writes {epochs[-1]:.1f})",
            flush=True,
        )
    p, e = statistics.median(plains), statistics.median(engines)
    return {
        "tlcv_img_s": e,
        "plain_img_s": p,
        "ratio": e / p,
        "tlcv_whole_epoch_img_s": statistics.median(epochs),
        "images": len(items),
        "plain_runs": plains,
        "tlcv_runs": engines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], help="accuracy, fastai, overhead")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "finetune.json")
    args = parser.parse_args()
    weights = str(args.shared / "weights" / "mobilenet_v2-b0353104.pth")
    result: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "epochs": args.epochs,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "overhead" not in args.skip:
            result["engine_overhead"] = engine_overhead(args, weights, tmp)
        if "fastai" not in args.skip:
            result["vs_fastai"] = versus_fastai(args, weights, tmp)
        if "accuracy" not in args.skip:
            result["accuracy"] = accuracy_table(args, weights, tmp)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.skip and args.out.is_file():  # a partial rerun keeps the other parts' figures
        result = {**json.loads(args.out.read_text()), **result}
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
