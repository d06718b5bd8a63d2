"""Video benchmark (issue 5): GTSRB traffic-sign tracks, one command, ~15 min on 2 CPU cores:

    .venv/bin/python benchmarks/bench_video.py

1046 train / 261 test clips (43 classes, 30 frames each, 32x32 upscaled to --image-size),
MobileNetV2 (../shared/weights), frozen cached per-frame features, 3 seeds. Heads: single frame
(middle / first), temporal mean, LSTM, BiLSTM, GRU. Clip accuracy on all frames and on the
first 5 and first 10 frames only (early frames are far away and blurry). Plus decode + feature
extraction frames/s against a raw forward pass over pre-decoded frames, in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import tlcv  # noqa: E402
from tlcv.backbones import create_backbone  # noqa: E402
from tlcv.data import eval_transform, normalize  # noqa: E402
from tlcv.features.clips import extract_clip_features  # noqa: E402
from tlcv.video import discover_clips, read_frames  # noqa: E402

HEADS = [
    ("frame (middle)", "frame", "middle"),
    ("frame (first)", "frame", "first"),
    ("mean", "mean", "middle"),
    ("lstm", "lstm", "middle"),
    ("bilstm", "bilstm", "middle"),
    ("gru", "gru", "middle"),
]
PREFIXES = [None, 10, 5]


def throughput(args, weights: str, cache: Path) -> dict:
    net = create_backbone("mobilenet_v2", weights=weights, image_size=args.image_size)
    items = discover_clips(args.shared / "data/gtsrb_tracks").all_items()
    fs = extract_clip_features(items, net, cache_dir=cache, batch_size=args.batch_size)
    pipeline = fs.frames_computed / fs.seconds
    tf = eval_transform(net.preprocessing)
    frames = torch.stack([tf(f) for it in items[:40] for f in read_frames(it.path)])
    x = normalize(frames, net.preprocessing, torch.device("cpu"), channels_last=True)
    model = net.to(memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        model(x[: args.batch_size])
        start = time.perf_counter()
        for i in range(0, len(x), args.batch_size):
            model(x[i : i + args.batch_size])
    raw = len(x) / (time.perf_counter() - start)
    print(f"decode + extract {pipeline:.0f} frames/s; raw forward {raw:.0f} frames/s", flush=True)
    return {
        "frames": fs.frames_computed,
        "pipeline_fps": pipeline,
        "raw_forward_fps": raw,
        "ratio": pipeline / raw,
        "clips": len(fs.items),
        "skipped": len(fs.skipped),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--sampling",
        default="uniform",
        help="how training clips are sampled: uniform (over the clip) or random (a window)",
    )
    parser.add_argument(
        "--heads", default=",".join(h[0] for h in HEADS), help="comma-separated head labels"
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "video.json")
    args = parser.parse_args()
    wanted = args.heads.split(",")
    weights = str(args.shared / "weights" / "mobilenet_v2-b0353104.pth")
    data = args.shared / "data" / "gtsrb_tracks"
    result: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "image_size": args.image_size,
        "frames": args.frames,
        "epochs": args.epochs,
        "sampling": args.sampling,
        "heads": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        if not args.skip_throughput:
            result["throughput"] = throughput(args, weights, cache)
        for label, kind, pick in (h for h in HEADS if h[0] in wanted):
            scores = {str(p): [] for p in PREFIXES}
            for seed in range(args.seeds):
                run = tlcv.train(
                    data,
                    Path(tmp) / f"{kind}-{pick}-{seed}",
                    temporal=kind,
                    frame_pick=pick,
                    frames=args.frames,
                    sampling=args.sampling,
                    backbone="mobilenet_v2",
                    weights=weights,
                    image_size=args.image_size,
                    cache=str(cache),
                    epochs=args.epochs,
                    lr=2e-3,
                    patience=None,
                    seed=seed,
                    batch_size=args.batch_size,
                )
                for prefix in PREFIXES:
                    m = tlcv.evaluate(run, data / "test", cache=str(cache), prefix=prefix)
                    scores[str(prefix)].append(m["accuracy"])
            result["heads"][label] = {
                k: {"mean": statistics.mean(v), "std": statistics.pstdev(v), "runs": v}
                for k, v in scores.items()
            }
            row = result["heads"][label]
            print(
                f"{label}: all {100 * row['None']['mean']:.1f}  first10 "
                f"{100 * row['10']['mean']:.1f}  first5 {100 * row['5']['mean']:.1f}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print("\n| head | all 30 frames | first 10 frames | first 5 frames |\n|---|---|---|---|")
    for label, row in result["heads"].items():
        cells = [
            f"{100 * row[str(p)]['mean']:.1f} ± {100 * row[str(p)]['std']:.1f}" for p in PREFIXES
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
