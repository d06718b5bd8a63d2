"""Small-model training speed (issue 19): tlcv vs a plain PyTorch loop over in-memory tensors,
in one run so the ratios share the machine's state. One command, ~6 min on 2 CPU cores:

    .venv/bin/python benchmarks/bench_small.py [--out bench_out/small.json]

1. DANN, LeNet, MNIST -> USPS (``tlcv adapt --mode full``, its defaults: batch 32 + 32, light
   augmentation, per-epoch validation on the held-out source and the target). tlcv's rate is
   its steady epoch (history.csv: epoch 3 minus epoch 2, validation included); the plain loop
   runs the same modules (LeNet, the bottleneck head, DANN's discriminator behind gradient
   reversal) over images decoded once into uint8 tensors, no augmentation, no validation.
2. ``tlcv train --strategy finetune`` on CIFAR-10 (../shared/data/cifar10/train, 32 px) with
   MobileNetV2 (ImageNet weights from ../shared/weights) and with LeNet (random weights):
   training images/s of tlcv's steady epoch vs the plain loop (same model, batch size, AdamW).

The plain loops are what a careful user would write by hand (their data already in memory), so
a ratio of 1 means tlcv's data pipeline, augmentation, logging and checkpoints cost nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import tlcv  # noqa: E402
from tlcv.adaptation.domains import read_domains  # noqa: E402
from tlcv.adaptation.methods import DomainBatch, build_methods  # noqa: E402
from tlcv.backbones import create_backbone  # noqa: E402
from tlcv.data import discover, make_splits  # noqa: E402
from tlcv.data.memory import DECODED  # noqa: E402
from tlcv.heads import BottleneckHead  # noqa: E402


def in_memory(items, prep) -> torch.Tensor:
    """The images as the plain loop keeps them: decoded once, uint8 (N, 3, S, S)."""
    from torchvision.transforms.v2 import functional as TF

    from tlcv.data.memory import decode_base

    size = prep.input_size
    return torch.stack([TF.center_crop(decode_base(it, prep), [size, size]) for it in items])


def normalise(x: torch.Tensor, prep) -> torch.Tensor:
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def steady_epoch_seconds(run_dir: Path) -> tuple[float, float]:
    """(seconds, of which validation) of the last epoch (the first carries start-up costs)."""
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    return float(rows[-1]["seconds"]) - float(rows[-2]["seconds"]), float(rows[-1]["val_seconds"])


def tuned(parts: torch.nn.Module) -> torch.optim.Optimizer:
    """The 'tuned' plain loop: what tlcv's engine does by default (channels_last weights and
    batches, the fused AdamW kernel), so a reader can tell tuning from overhead."""
    parts.to(memory_format=torch.channels_last)
    return torch.optim.AdamW(parts.parameters(), lr=1e-3, fused=True)


def rates(tlcv_rate: float, train_rate: float, plain: float, plain_tuned: float, unit: str):
    return {
        f"tlcv_{unit}": round(tlcv_rate, 2),
        f"tlcv_training_only_{unit}": round(train_rate, 2),
        f"plain_{unit}": round(plain, 2),
        f"plain_tuned_{unit}": round(plain_tuned, 2),
        "ratio": round(tlcv_rate / plain, 3),
        "ratio_training_only": round(train_rate / plain, 3),
        "ratio_vs_tuned": round(tlcv_rate / plain_tuned, 3),
    }


def dann(args, tmp: Path) -> dict:
    source, target = args.shared / "data/digits/mnist/train", args.shared / "data/digits/usps/train"
    start = time.perf_counter()
    run = tlcv.adapt(
        source, target, tmp / "dann", method="dann", backbone="lenet", mode="full",
        epochs=args.epochs, seed=0,
    )  # fmt: skip
    tlcv_total = time.perf_counter() - start
    steps = len(read_domains(str(source), str(target)).target) // 32  # the last part-batch dropped
    epoch_s, val_s = steady_epoch_seconds(run.path)

    DECODED.clear()  # the plain loop decodes for itself
    domains = read_domains(str(source), str(target))
    backbone = create_backbone("lenet", "none", seed=0)
    prep = backbone.preprocessing
    t0 = time.perf_counter()
    xs, xt = in_memory(domains.source, prep), in_memory(domains.target, prep)
    decode_s = time.perf_counter() - t0
    lookup = {c: i for i, c in enumerate(domains.classes)}
    ys = torch.tensor([lookup[it.label] for it in domains.source])
    torch.manual_seed(0)
    head = BottleneckHead(backbone.feature_dim, 256, len(lookup), 0.5)
    method = build_methods("dann", 256, len(lookup), 1.0)[0]
    parts = torch.nn.ModuleList([backbone.net, head, method]).train()

    def epoch(opt, layout=torch.contiguous_format) -> float:
        begin = time.perf_counter()
        order_t = torch.randperm(len(xt))
        for step in range(steps):
            i_s = torch.randint(0, len(xs), (32,))
            i_t = order_t[step * 32 : (step + 1) * 32]
            x = normalise(torch.cat([xs[i_s], xt[i_t]]), prep).contiguous(memory_format=layout)
            f = head.features(backbone(x))
            logits = head.classifier(f)
            n = len(i_s)
            loss = F.cross_entropy(logits[:n], ys[i_s])
            terms = method.loss(DomainBatch(f[:n], f[n:], logits[:n], logits[n:], step / steps))
            loss = loss + sum(v for v in terms.values() if v.requires_grad)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return steps / (time.perf_counter() - begin)

    opt = torch.optim.AdamW(parts.parameters(), lr=1e-3)
    epoch(opt)  # warm-up
    plain_rate = epoch(opt)
    plain_tuned = epoch(tuned(parts), torch.channels_last)
    return {
        "steps_per_epoch": steps,
        **rates(steps / epoch_s, steps / (epoch_s - val_s), plain_rate, plain_tuned, "steps_per_s"),
        "tlcv_validation_s_per_epoch": round(val_s, 2),
        "tlcv_wall_s": round(tlcv_total, 1),
        "tlcv_epochs": args.epochs,
        "plain_decode_s": round(decode_s, 2),
        "target_accuracy": json.loads((run.path / "metrics.json").read_text())["target"][
            "accuracy"
        ],
    }


def finetune(args, tmp: Path, backbone_name: str, weights: str) -> dict:
    data = args.shared / "data/cifar10/train"
    run = tlcv.train(
        data, tmp / backbone_name, strategy="finetune", backbone=backbone_name, weights=weights,
        image_size=32, epochs=args.epochs, batch_size=64, seed=0,
    )  # fmt: skip
    splits = make_splits(discover(str(data)), seed=0)
    n_train = len(splits.train)
    epoch_s, val_s = steady_epoch_seconds(run.path)

    DECODED.clear()
    backbone = create_backbone(backbone_name, weights, 32, seed=0)
    prep = backbone.preprocessing
    x_all = in_memory(splits.train, prep)
    lookup = {c: i for i, c in enumerate(splits.classes)}
    y_all = torch.tensor([lookup[it.label] for it in splits.train])
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.feature_dim, len(lookup)))
    model.train()

    def epoch(opt, layout=torch.contiguous_format) -> float:
        begin = time.perf_counter()
        order = torch.randperm(n_train)
        for i in range(0, n_train, 64):
            idx = order[i : i + 64]
            x = normalise(x_all[idx], prep).contiguous(memory_format=layout)
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        return n_train / (time.perf_counter() - begin)

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    epoch(opt)
    plain_rate = epoch(opt)
    plain_tuned = epoch(tuned(model), torch.channels_last)
    metrics = json.loads((run.path / "metrics.json").read_text())
    return {
        "train_images": n_train,
        **rates(
            n_train / epoch_s, n_train / (epoch_s - val_s), plain_rate, plain_tuned, "images_per_s"
        ),
        "tlcv_validation_s_per_epoch": round(val_s, 2),
        "tlcv_epochs": args.epochs,
        "test_accuracy": metrics.get("test", {}).get("accuracy"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "small.json")
    args = parser.parse_args()
    mobilenet = str(args.shared / "weights/mobilenet_v2-b0353104.pth")
    results: dict = {"date": time.strftime("%Y-%m-%d"), "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        results["dann_lenet_mnist_usps"] = dann(args, Path(tmp))
        print(json.dumps(results["dann_lenet_mnist_usps"]), flush=True)
        for name, weights in (("mobilenet_v2", mobilenet), ("lenet", "none")):
            results[f"finetune_cifar10_32px_{name}"] = finetune(args, Path(tmp), name, weights)
            print(json.dumps(results[f"finetune_cifar10_32px_{name}"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
