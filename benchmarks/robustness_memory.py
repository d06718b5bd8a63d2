"""Peak memory of very large annotation files and images (issue 33), for
bench_robustness.py's ``memory`` part: each case runs in a child process (its own peak RSS),
against this checkout's src/ and, with --before REF, against that commit's (a git worktree).

    .venv/bin/python benchmarks/bench_robustness.py --parts memory [--before abd799f]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BOXES = 1_700_000

CHILD = """
import resource, sys, time
from pathlib import Path
case, path = sys.argv[1], Path(sys.argv[2])
started = time.perf_counter()
if case == "coco":
    from tlcv.tasks.detection.data import discover_detection
    found = discover_detection(path)
    result = f"{sum(len(i.boxes) for i in found.all_items())} boxes read"
else:
    from tlcv.tasks.segmentation import data as seg
    fmt = seg.MaskFormat(["background", "thing"], "index", {0: 0, 1: 1}, "")
    why = seg.check_pair(path / "images" / "big.png", path / "masks" / "big.png", fmt)
    result = "accepted at the check" if why is None else f"refused: {why}"
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{result}\\t{time.perf_counter() - started:.1f}\\t{peak:.0f}")
"""


def make_coco(root: Path) -> Path:
    """A COCO file of 1.7 M boxes (with polygons, as COCO exports carry) over 50 images."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(50):
        Image.new("RGB", (640, 480)).save(root / "images" / f"{i:05d}.jpg")
    polygon = [[10.5, 20.25, 40.5, 20.25, 40.5, 60.25, 10.5, 60.25]]
    data = {
        "images": [
            {"id": i, "file_name": f"{i:05d}.jpg", "width": 640, "height": 480} for i in range(50)
        ],  # fmt: skip
        "categories": [{"id": k, "name": f"c{k}"} for k in (1, 2, 3)],
        "annotations": [
            {
                "id": j,
                "image_id": j % 50,
                "category_id": 1 + j % 3,
                "bbox": [10.5, 20.25, 30.0, 40.0],
                "area": 1200.0,
                "iscrowd": 0,
                "segmentation": polygon,
            }
            for j in range(BOXES)
        ],  # fmt: skip
    }
    (root / "annotations.json").write_text(json.dumps(data))
    return root


def make_pair(root: Path) -> Path:
    """A 12000 x 12000 image and its mask (144 MP: over the 120 MP guard)."""
    for folder, mode in (("images", "RGB"), ("masks", "L")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        Image.new(mode, (12000, 12000)).save(root / folder / "big.png")
    return root


def _child(src: Path, case: str, path: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", CHILD, case, str(path)],
                          env=env, capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode:
        return [f"error: {done.stderr.strip().splitlines()[-1][:120]}", "-", "-"]
    return done.stdout.strip().split("\t")


def part_memory(tmp: Path, before: str | None) -> None:
    # Built in their own processes: a child's peak RSS counts its parent's at the fork (Linux
    # keeps the high-water mark across exec), so this process must stay small
    for maker, folder in (("make_coco", "coco"), ("make_pair", "pair")):
        target = str(tmp / folder)
        code = f"import pathlib, robustness_memory as m; m.{maker}(pathlib.Path({target!r}))"
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent, check=True)
    coco, pair = tmp / "coco", tmp / "pair"
    size = (coco / "annotations.json").stat().st_size / 1e6
    sources = {"now": ROOT / "src"}
    if before:
        tree = tmp / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", str(tree), before],
                       check=True)  # fmt: skip
        sources[f"before ({before})"] = tree / "src"
    print("| case | code | outcome | seconds | peak RSS MB |\n|---|---|---|---|---|")
    try:
        for case, path, label in (("coco", coco, f"COCO file, {size:.0f} MB, {BOXES:,} boxes"),
                                  ("pair", pair, "12000 x 12000 image + mask")):  # fmt: skip
            for name, src in sources.items():
                outcome, seconds, peak = _child(src, case, path)
                print(f"| {label} | {name} | {outcome[:90]} | {seconds} | {peak} |", flush=True)
    finally:
        if before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tmp / "before")], check=False)  # fmt: skip
