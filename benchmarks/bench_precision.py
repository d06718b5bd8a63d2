"""`--precision bf16` on CPU: training-step time of 32-bit vs bfloat16 autocast, in one run.

Rerun: .venv/bin/python benchmarks/bench_precision.py [--steps 5] [--out bench_out/precision.json]

Each workload is a training step (forward, loss, backward, AdamW) of the network tlcv builds
for it, channels_last as the engine runs it, on random data of the recipe's shape: the Kvasir
recipe's U-Net (MobileNetV2, 256 px, batch 16) and a MobileNetV2 classifier (224 px, batch
32). The first step of each precision is a warm-up; the figure is the median of the rest.
The end-to-end figure (a whole `tlcv train` on Kvasir-SEG in both precisions) is in
docs/benchmarks.md. The ratio only means something on a CPU with native bfloat16
(``cpu_has_bf16``); elsewhere tlcv refuses --precision bf16.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def workloads():
    from tlcv.backbones import create_backbone
    from tlcv.heads.model import ClassifierModel
    from tlcv.tasks.segmentation.model import build_model

    seg, _ = build_model(create_backbone("mobilenet_v2", "none"), "unet", 2, 256, seed=0)
    yield (
        "segmentation U-Net, MobileNetV2, 256 px, batch 16",
        seg,
        (16, 3, 256, 256),
        (16, 256, 256),
    )
    net = create_backbone("mobilenet_v2", "none")
    clf = ClassifierModel(net, torch.nn.Linear(net.feature_dim, 31))
    yield "classifier, MobileNetV2, 224 px, batch 32", clf, (32, 3, 224, 224), (32,)


def step_seconds(model, x, y, bf16: bool, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
            loss = F.cross_entropy(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    from tlcv.engine.trainer import cpu_has_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "precision.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    result = {"cpu_has_bf16": cpu_has_bf16(), "threads": torch.get_num_threads(), "rows": []}
    for name, model, shape, target in workloads():
        model = model.train().to(memory_format=torch.channels_last)
        x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 2, target)
        fp32 = step_seconds(model, x, y, False, args.steps)
        bf16 = step_seconds(model, x, y, True, args.steps)
        row = {"workload": name, "fp32_s": fp32, "bf16_s": bf16, "speedup": fp32 / bf16}
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
