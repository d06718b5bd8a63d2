"""Feature-extraction pipeline benchmark on all of Office-31 (issue 2), one run, ratios only.

    .venv/bin/python benchmarks/bench_extract.py            # ~6 min on 2 CPU cores

Measures, with MobileNetV2 (../shared/weights) at 224 px, batch 64, default threads/workers:
  1. `tlcv extract` throughput / raw forward of the same network on pre-decoded tensors
  2. `tlcv extract` throughput / a plain torchvision ImageFolder + DataLoader loop
  3. cached re-run time / first run time
  4. peak memory (max RSS) extracting amazon (2817 images) / dslr (498)
All files are read once first, so every contender runs on a warm OS file cache.
Each `tlcv extract` runs as its own process (the real CLI); its own JSON gives the timing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchvision import datasets, transforms

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tlcv.backbones import create_backbone  # noqa: E402
from tlcv.data import default_workers_for, discover, eval_transform, normalize, open_rgb  # noqa: E402

DOMAINS = ("amazon", "dslr", "webcam")


def cli_extract(data: Path, weights: Path, cache: Path, batch: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "tlcv.cli",
        "extract",
        "--data",
        str(data),
        "--backbone",
        "mobilenet_v2",
        "--weights",
        str(weights),
        "--cache",
        str(cache),
        "--batch-size",
        str(batch),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = proc.communicate()
    # The child reports its own peak RSS (main process: where a non-streaming pipeline grows).
    if proc.returncode != 0:
        raise SystemExit(f"tlcv extract failed:\n{err.decode()[-2000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


def raw_forward(net, items, batch: int) -> float:
    """Images/s of the network alone on tensors decoded beforehand (same layout as tlcv)."""
    tf = eval_transform(net.preprocessing)
    pixels = torch.stack([tf(open_rgb(it.path, net.preprocessing.resize_size)) for it in items])
    x = normalize(pixels, net.preprocessing, torch.device("cpu"), channels_last=True)
    model = net.to(memory_format=torch.channels_last).eval()
    with torch.inference_mode():
        model(x[:batch])  # warm-up
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
    return len(x) / (time.perf_counter() - start)


def plain_loop(net, root: Path, batch: int, workers: int) -> tuple[int, float]:
    """What a user writes from the torchvision tutorial: ImageFolder + DataLoader + no_grad."""
    prep = net.preprocessing
    tf = transforms.Compose(
        [
            transforms.Resize(prep.resize_size),
            transforms.CenterCrop(prep.input_size),
            transforms.ToTensor(),
            transforms.Normalize(prep.mean, prep.std),
        ]
    )
    model = net.to(memory_format=torch.contiguous_format).eval()
    n, start = 0, time.perf_counter()
    for domain in DOMAINS:
        loader = torch.utils.data.DataLoader(
            datasets.ImageFolder(root / domain, tf), batch_size=batch, num_workers=workers
        )
        with torch.no_grad():
            for x, _ in loader:
                model(x)
                n += len(x)
    return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--raw-images", type=int, default=320)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "extract.json")
    args = parser.parse_args()
    office = args.shared / "data" / "office31"
    weights = args.shared / "weights" / "mobilenet_v2-b0353104.pth"
    net = create_backbone("mobilenet_v2", weights=str(weights))
    n_total = sum(len(discover(office / d).all_items()) for d in DOMAINS)
    workers = default_workers_for(n_total)
    print(
        f"Office-31: {n_total} images; torch threads {torch.get_num_threads()}, "
        f"decode workers {workers}",
        flush=True,
    )

    # Read every file once so no contender pays for a cold disk (the OS page cache is shared).
    for d in DOMAINS:
        for it in discover(office / d).all_items():
            Path(it.path).read_bytes()
    mixed = [it for d in DOMAINS for it in discover(office / d).all_items()[::12]]
    raw_before = raw_forward(net, mixed[: args.raw_images], args.batch_size)
    print(
        f"raw forward: {raw_before:.1f} img/s on {min(len(mixed), args.raw_images)} images",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as tmp:
        first, again, rss = {}, {}, {}
        for domain in DOMAINS:
            first[domain] = cli_extract(office / domain, weights, Path(tmp), args.batch_size)
            rss[domain] = first[domain]["max_rss_mb"]
            print(
                f"tlcv extract {domain}: {first[domain]['images_per_s']} img/s, "
                f"max RSS {rss[domain]:.0f} MB",
                flush=True,
            )
        for domain in DOMAINS:
            again[domain] = cli_extract(office / domain, weights, Path(tmp), args.batch_size)
            assert again[domain]["computed"] == 0, again[domain]
    first_s = sum(r["seconds"] for r in first.values())
    again_s = sum(r["seconds"] for r in again.values())
    tlcv_rate = n_total / first_s
    print(
        f"tlcv extract, all Office-31: {tlcv_rate:.1f} img/s ({first_s:.1f} s); cached re-run "
        f"{again_s:.2f} s",
        flush=True,
    )

    # Raw forward again after the long runs; the ratio uses the mean of both (machine drift).
    raw_after = raw_forward(net, mixed[: args.raw_images], args.batch_size)
    raw = (raw_before + raw_after) / 2
    print(f"raw forward again: {raw_after:.1f} img/s; mean {raw:.1f}", flush=True)
    n_plain, plain_s = plain_loop(net, office, args.batch_size, workers)
    plain_rate = n_plain / plain_s
    print(f"plain torchvision loop: {plain_rate:.1f} img/s ({plain_s:.1f} s)", flush=True)

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "images": n_total,
        "threads": torch.get_num_threads(),
        "decode_workers": workers,
        "raw_forward_img_s": round(raw, 2),
        "raw_forward_before_after": [round(raw_before, 2), round(raw_after, 2)],
        "tlcv_extract_img_s": round(tlcv_rate, 2),
        "plain_loop_img_s": round(plain_rate, 2),
        "extract_over_raw": round(tlcv_rate / raw, 3),
        "extract_over_plain": round(tlcv_rate / plain_rate, 3),
        "cached_over_first": round(again_s / first_s, 4),
        "max_rss_mb": rss,
        "rss_amazon_over_dslr": round(rss["amazon"] / rss["dslr"], 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    goals = [
        ("extract / raw forward", result["extract_over_raw"], ">=", 0.85),
        ("extract / plain loop", result["extract_over_plain"], ">=", 1.3),
        ("cached / first", result["cached_over_first"], "<=", 0.05),
        ("RSS amazon / dslr", result["rss_amazon_over_dslr"], "<=", 1.2),
    ]
    print("\n| measure | value | goal | met |\n|---|---|---|---|")
    for name, value, op, goal in goals:
        met = value >= goal if op == ">=" else value <= goal
        print(f"| {name} | {value} | {op} {goal} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
