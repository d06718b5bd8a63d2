"""The documentation site's pictures, made by running tlcv on ../shared/data: small models of
every task, then the PNGs their evaluate / predict / explain / adapt commands write, and a
screenshot of a report in headless Chromium. The pictures go to the build output
(build/gallery, or TLCV_GALLERY), never into the repository: the data's licences forbid
redistributing them.

    .venv/bin/python docs/gallery.py            # ~6 min on 2 CPU cores
    .venv/bin/mkdocs build --strict             # the pages link the pictures from there
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MOBILENET = ROOT.parent / "shared" / "weights" / "mobilenet_v2-b0353104.pth"
sys.path.insert(0, str(Path(__file__).parent / "hooks"))
from tlcv_docs import gallery_dir  # noqa: E402

SMALL = ["--backbone", "mobilenet_v2", "--weights", str(MOBILENET), "--num-workers", "0"]


def tlcv(*args: object) -> None:
    """One tlcv command; a failure stops the gallery with the command's own message."""
    command = [sys.executable, "-m", "tlcv.cli", *map(str, args)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    print(f"  {time.perf_counter() - started:5.1f} s  tlcv {' '.join(map(str, args))[:110]}")
    if done.returncode:
        raise SystemExit(f"failed: tlcv {' '.join(map(str, args))}\n{done.stderr[-3000:]}")


def keep(found: Path | None, out: Path) -> None:
    """Copy one produced picture to its place in the gallery."""
    if found is None or not found.is_file():
        raise SystemExit(f"expected a picture for {out.name}, found none")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found, out)


def first(folder: Path, pattern: str) -> Path | None:
    return next(iter(sorted(folder.rglob(pattern))), None)


def linked_subset(source: Path, target: Path, classes: list[str], per_class: int) -> Path:
    """A few classes of an image-folder data set, as links (nothing copied)."""
    for name in classes:
        (target / name).mkdir(parents=True, exist_ok=True)
        for image in sorted((source / name).iterdir())[:per_class]:
            link = target / name / image.name
            if not link.exists():
                link.symlink_to(image)
    return target


def classification(work: Path, out: Path) -> Path:
    office = DATA / "office31"
    classes = ["back_pack", "bike", "calculator", "headphones", "mug"]
    dslr = linked_subset(office / "dslr", work / "dslr", classes, 12)
    webcam = linked_subset(office / "webcam", work / "webcam", classes, 12)
    run = work / "runs" / "office"
    tlcv("train", "--data", dslr, "--out", run, *SMALL, "--image-size", "160", "--overwrite")
    tlcv("evaluate", run, "--data", webcam, "--explain", "4")
    keep(first(run / "eval", "confusion*.png"), out / "classification" / "confusion.png")
    tlcv("explain", run, webcam / "mug", "--out", work / "maps", "--method", "gradcam")
    keep(first(work / "maps", "*.png"), out / "classification" / "gradcam.png")
    adapted = work / "runs" / "adapt"
    tlcv("adapt", "--source", dslr, "--target", webcam, "--method", "dann", "--mode", "frozen",
         "--out", adapted, *SMALL, "--image-size", "160", "--epochs", "5",
         "--overwrite")  # fmt: skip
    keep(first(adapted, "tsne.png"), out / "adaptation" / "tsne.png")
    return run


def segmentation(work: Path, out: Path) -> Path:
    camvid = DATA / "camvid"
    rows = ["image,mask,split"]
    for split, n in (("train", 24), ("val", 4)):
        for image in sorted((camvid / split / "images").iterdir())[:n]:
            rows.append(f"{image},{camvid / split / 'masks' / (image.stem + '.png')},{split}")
    (work / "camvid").mkdir(parents=True, exist_ok=True)
    (work / "camvid" / "frames.csv").write_text("\n".join(rows) + "\n")
    shutil.copyfile(camvid / "classes.txt", work / "camvid" / "classes.txt")
    run = work / "runs" / "camvid"
    tlcv("train", "--task", "segmentation", "--data", work / "camvid" / "frames.csv", "--out", run,
         *SMALL, "--strategy", "finetune", "--decoder", "fpn", "--image-size", "160",
         "--epochs", "4", "--batch-size", "8", "--ignore-index", "11", "--overwrite")  # fmt: skip
    tlcv("evaluate", run, "--data", camvid / "val")
    keep(first(run / "eval", "overlays/*.png"), out / "segmentation" / "overlay.png")
    return run


def detection(work: Path, out: Path) -> Path:
    gtsdb = DATA / "gtsdb" / "train"
    data = work / "gtsdb"
    (data / "images").mkdir(parents=True, exist_ok=True)
    lines = (gtsdb / "gt.txt").read_text().splitlines()
    names = sorted({ln.split(";")[0] for ln in lines if ln.strip()})[:60]
    for name in names:  # copied: links leading out of the data folder are refused
        shutil.copyfile(gtsdb / "images" / name, data / "images" / name)
    kept = [ln for ln in lines if ln.split(";")[0] in names]
    (data / "gt.txt").write_text("\n".join(kept) + "\n")
    run = work / "runs" / "gtsdb"
    tlcv("train", "--task", "detection", "--data", data, "--out", run, *SMALL, "--detector",
         "fcos", "--strategy", "finetune", "--image-size", "512", "--train-crop", "256",
         "--fpn-channels", "64", "--epochs", "6", "--batch-size", "4", "--overwrite")  # fmt: skip
    tlcv("evaluate", run, "--data", data)
    keep(first(run / "eval", "drawn/*.png"), out / "detection" / "drawn.png")
    keep(first(run / "eval", "pr_curve*.png"), out / "detection" / "pr_curve.png")
    return run


def anomaly(work: Path, out: Path) -> Path:
    tiles = DATA / "anomaly" / "magnetic_tile"
    tiles = tiles if tiles.is_dir() else next((DATA / "anomaly").iterdir())
    run = work / "runs" / "anomaly"
    tlcv("train", "--task", "anomaly", "--data", tiles, "--out", run, *SMALL, "--method", "padim",
         "--image-size", "160", "--overwrite")  # fmt: skip
    tlcv("evaluate", run, "--data", tiles)
    keep(first(run / "eval", "panels/*.png") or first(run / "eval", "*panel*.png"),
         out / "anomaly" / "panel.png")  # fmt: skip
    keep(first(run / "eval", "*hist*.png"), out / "anomaly" / "histogram.png")
    return run


def clips(work: Path, out: Path) -> Path:
    tracks = DATA / "gtsrb_tracks"
    run = work / "runs" / "clips"
    tlcv("train", "--data", tracks, "--out", run, *SMALL, "--temporal", "bilstm", "--frames", "8",
         "--image-size", "64", "--epochs", "10", "--per-class", "4", "--overwrite")  # fmt: skip
    tlcv("evaluate", run, "--data", tracks / "test", "--num-workers", "0")
    keep(first(run / "eval", "confusion*.png"), out / "clips" / "confusion.png")
    return run


def report_screenshot(runs: list[Path], work: Path, out: Path) -> None:
    """The HTML report of the runs above, as Chromium renders it."""
    from selenium import webdriver

    html = work / "report.html"
    tlcv("report", *runs, "--out", html)
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(flag)
    if shutil.which("chromium"):
        options.binary_location = shutil.which("chromium")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(html.resolve().as_uri())
        time.sleep(1)
        (out / "report").mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out / "report" / "report.png"))
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=gallery_dir(), help="where the pictures go")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "gallery-runs")
    args = ap.parse_args()
    os.environ.setdefault("TLCV_CACHE", str(args.work / "cache"))
    args.work.mkdir(parents=True, exist_ok=True)
    runs = []
    for make in (classification, segmentation, anomaly, detection, clips):
        print(make.__name__)
        runs.append(make(args.work, args.out))
    report_screenshot(runs[:3], args.work, args.out)
    pictures = sorted(p.relative_to(args.out) for p in args.out.rglob("*.png"))
    print(f"{len(pictures)} pictures in {args.out}: {', '.join(map(str, pictures))}")


if __name__ == "__main__":
    main()
