"""Robustness evidence (issue 11), one command:

    .venv/bin/python benchmarks/bench_robustness.py              # ~15 min on 2 CPU cores
    .venv/bin/python benchmarks/bench_robustness.py --parts files,folders

Three parts, each printed as a Markdown table:
  files    >= 1000 damaged or awkward image files of many kinds, made from real Office-31 and
           digit images, run through `tlcv extract` in a child process (with a time limit):
           crashes, hangs, files wrongly skipped, files wrongly used. A file's expected fate
           comes from its kind (a truncated file must be skipped, a CMYK JPEG used) or, for
           kinds where it depends on which bytes broke (bit flips, giant text chunks), from a
           full Pillow decode of that file done here, independently.
  kills    N random kill -9 moments (some aimed at a checkpoint being written) of a
           fine-tuning run and of a DANN adaptation run; each is resumed with --resume and its
           final weights compared with an uninterrupted run's (goal: identical, N of N).
  folders  damaged run folders (weights, model.json, classes.json, config.yaml, last.ckpt):
           the one-line message `tlcv predict` / `tlcv train --resume` gives for each.
  hostile  (only when asked) every hostile annotation, model-file and HTTP-client case of issue
           33 through the CLI (robustness_hostile.py).
  memory   (only when asked) peak RSS of reading a 1.7 M-box COCO file and of checking a
           144-megapixel image + mask pair, now and with --before REF (robustness_memory.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OFFICE = SHARED / "data" / "office31"
DIGITS = SHARED / "data" / "digits"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "1000"}  # messages unwrapped
TLCV = [sys.executable, "-m", "tlcv.cli"]


# ---------------------------------------------------------------- part 1: damaged files
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return len(data).to_bytes(4, "big") + kind + data + crc.to_bytes(4, "big")


def _png_header_only(width: int, height: int) -> bytes:
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IEND", b"")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _jpeg_with_size(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header (SOF0/SOF2) claiming another size."""
    out = bytearray(data)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = out.find(marker)
        if at > 0:
            out[at + 5 : at + 7] = height.to_bytes(2, "big")
            out[at + 7 : at + 9] = width.to_bytes(2, "big")
            return bytes(out)
    return bytes(out)


def _variants(
    rgb: Image.Image, jpeg: bytes, rng: random.Random
) -> list[tuple[str, str, str, bytes]]:
    """(kind, file suffix, expected 'use' | 'skip' | 'decode', bytes) for one source image."""
    png = _encode(rgb, "PNG")
    small = rgb.resize((64, 48))
    out: list[tuple[str, str, str, bytes]] = []
    for frac in (0.05, 0.3, 0.6, 0.9, 0.98):
        out.append((f"truncated jpeg {frac:.0%}", ".jpg", "skip", jpeg[: int(len(jpeg) * frac)]))
        cut = int(len(png) * frac)
        # A PNG cut after its last pixel chunk (only the IEND trailer lost) is a whole image.
        fate = "use" if cut >= _png_pixels_end(png) else "skip"
        out.append((f"truncated png {frac:.0%}", ".png", fate, png[:cut]))
    for flips in (1, 8, 64):
        for source, suffix in ((jpeg, ".jpg"), (png, ".png")):
            data = bytearray(source)
            for _ in range(flips):
                at = rng.randrange(32, len(data))
                data[at] ^= 1 << rng.randrange(8)
            out.append((f"bit-flipped x{flips}", suffix, "decode", bytes(data)))
    out += [
        ("zero bytes", ".jpg", "skip", b""),
        ("random bytes", ".jpg", "skip", rng.randbytes(rng.randrange(10, 5000))),
        ("random bytes", ".png", "skip", rng.randbytes(rng.randrange(10, 5000))),
        ("JPEG magic + garbage", ".jpg", "skip", b"\xff\xd8\xff\xe0" + rng.randbytes(3000)),
        ("PNG magic + garbage", ".png", "skip", b"\x89PNG\r\n\x1a\n" + rng.randbytes(3000)),
        ("text file", ".jpg", "skip", b"label,notes\nthis is not an image\n"),
        ("html error page", ".png", "skip", b"<html><body>404 Not Found</body></html>"),
        ("PNG header claiming 20000x20000", ".png", "skip", _png_header_only(20000, 20000)),
        ("PNG header claiming 100000^2", ".png", "skip", _png_header_only(100000, 100000)),
        ("JPEG claiming 65000x65000", ".jpg", "skip", _jpeg_with_size(jpeg, 65000, 65000)),
        ("JPEG with 10 x 60 KB comments", ".jpg", "use", _with_comments(jpeg, 10)),
        ("PNG with a 40 MB zTXt", ".png", "decode", _with_ztxt(png, 40_000_000)),
        ("PNG saved as .jpg", ".jpg", "use", png),
        ("JPEG saved as .png", ".png", "use", jpeg),
        ("BMP saved as .gif", ".gif", "use", _encode(small, "BMP")),
        ("CMYK JPEG", ".jpg", "use", _encode(rgb.convert("CMYK"), "JPEG")),
        ("grey JPEG", ".jpg", "use", _encode(rgb.convert("L"), "JPEG")),
        ("progressive JPEG", ".jpg", "use", _encode(rgb, "JPEG", progressive=True)),
        ("16-bit grey PNG", ".png", "use", _grey16(rgb)),
        (
            "palette PNG",
            ".png",
            "use",
            _encode(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        ),
        ("LA PNG", ".png", "use", _encode(rgb.convert("LA"), "PNG")),
        ("RGBA PNG", ".png", "use", _encode(rgb.convert("RGBA"), "PNG")),
        ("1-bit PNG", ".png", "use", _encode(rgb.convert("1"), "PNG")),
        ("EXIF-rotated JPEG", ".jpg", "use", _exif_rotated(rgb)),
        ("animated GIF", ".gif", "use", _animated(small)),
        ("WebP", ".webp", "use", _encode(rgb, "WEBP")),
        ("TIFF", ".tif", "use", _encode(small, "TIFF")),
        (
            "float TIFF",
            ".tif",
            "use",
            _encode(Image.fromarray(np.asarray(small.convert("L"), np.float32)), "TIFF"),
        ),
        ("1x1 PNG", ".png", "use", _encode(rgb.resize((1, 1)), "PNG")),
        ("8000x4 strip PNG", ".png", "use", _encode(rgb.resize((8000, 4)), "PNG")),
    ]
    return out


def _png_pixels_end(png: bytes) -> int:
    """Offset just past the last IDAT chunk (length + type + data + CRC)."""
    at = png.rfind(b"IDAT") - 4
    return at + 12 + int.from_bytes(png[at : at + 4], "big")


def _with_comments(jpeg: bytes, n: int) -> bytes:
    com = b"\xff\xfe" + (60_002).to_bytes(2, "big") + b"c" * 60_000
    return jpeg[:2] + com * n + jpeg[2:]


def _with_ztxt(png: bytes, size: int) -> bytes:
    body = b"Comment\x00\x00" + zlib.compress(b"A" * size, 9)
    return png[:33] + _png_chunk(b"zTXt", body) + png[33:]


def _grey16(rgb: Image.Image) -> bytes:
    return _encode(Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257), "PNG")


def _exif_rotated(rgb: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    return _encode(rgb, "JPEG", exif=exif.tobytes())


def _animated(small: Image.Image) -> bytes:
    frames = [small, small.rotate(90), small.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def _decodes(path: Path) -> bool:
    """Independent reference: Pillow decodes the whole file to pixels within its own limits."""
    try:
        with Image.open(path) as img:
            if img.size[0] * img.size[1] > 120_000_000:
                return False
            img.load()
            img.convert("RGB")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not decodable"
        return False


def make_damaged_files(root: Path, seed: int = 0) -> dict[str, tuple[str, str]]:
    """Write the files under root/CLASS/; returns path -> (kind, expected 'use' | 'skip')."""
    rng = random.Random(seed)
    sources = sorted((OFFICE / "dslr" / "bike").iterdir())[:8]
    sources += sorted((OFFICE / "webcam" / "mug").iterdir())[:6]
    sources += sorted((OFFICE / "amazon" / "keyboard").iterdir())[:4]
    sources += sorted((DIGITS / "usps" / "train" / "3").iterdir())[:2]
    sources += sorted((DIGITS / "mnist" / "train" / "7").iterdir())[:2]
    bomb = _encode(Image.new("L", (12_000, 12_000)), "PNG", optimize=True)  # 144 MP of zeros
    expected: dict[str, tuple[str, str]] = {}
    for n, source in enumerate(sources):
        rgb = Image.open(source).convert("RGB")
        jpeg = _encode(rgb, "JPEG", quality=90)
        variants = _variants(rgb, jpeg, rng) + [("144 MP zero PNG (bomb)", ".png", "skip", bomb)]
        folder = root / f"class{n % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        for k, (kind, suffix, fate, data) in enumerate(variants):
            path = folder / f"s{n:02d}_{k:03d}{suffix}"
            path.write_bytes(data)
            if fate == "decode":
                fate = "use" if _decodes(path) else "skip"
            expected[str(path)] = (kind, fate)
    return expected


EXTRACT_CHILD = """
import json, sys
from tlcv import api
fs = api.extract(sys.argv[1], backbone='lenet', weights='none', cache=sys.argv[2], num_workers=1)
print(json.dumps({'used': [it.path for it in fs.items], 'skipped': dict(fs.skipped)}))
"""


def part_files(tmp: Path) -> None:
    expected = make_damaged_files(tmp / "damaged")
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", EXTRACT_CHILD, str(tmp / "damaged"), str(tmp / "cache")],
            env=ENV,
            capture_output=True,
            timeout=900,
        )
        hung = False
    except subprocess.TimeoutExpired:
        proc, hung = None, True
    seconds = time.perf_counter() - started
    crashed = proc is not None and proc.returncode != 0
    result = json.loads(proc.stdout.decode().splitlines()[-1]) if proc and not crashed else None
    used = set(result["used"]) if result else set()
    skipped = result["skipped"] if result else {}
    by_kind: dict[str, list[int]] = {}
    wrongly_skipped, wrongly_used, unnamed = [], [], []
    for path, (kind, fate) in expected.items():
        row = by_kind.setdefault(kind, [0, 0, 0, 0])  # files, used, skipped, wrong
        row[0] += 1
        is_used, is_skipped = path in used, path in skipped
        row[1] += is_used
        row[2] += is_skipped
        if not (is_used or is_skipped):
            unnamed.append(path)
        if fate == "use" and not is_used:
            wrongly_skipped.append((kind, path, skipped.get(path, "")))
            row[3] += 1
        if fate == "skip" and is_used:
            wrongly_used.append((kind, path))
            row[3] += 1
    rotated = [p for p, (k, _) in expected.items() if k == "EXIF-rotated JPEG"]
    sys.path.insert(0, str(ROOT / "src"))
    from tlcv.data.decode import open_rgb

    upright = sum(open_rgb(p).size == Image.open(p).size[::-1] for p in rotated)
    print(
        f"\n{len(expected)} files, {len(by_kind)} kinds, {seconds:.0f} s "
        f"(`tlcv.api.extract`, LeNet, 1 decode worker)\n"
    )
    print("| outcome | count | goal |\n|---|---|---|")
    print(f"| crashes (exit != 0 or traceback) | {int(crashed)} | 0 |")
    print(f"| hangs (> 900 s) | {int(hung)} | 0 |")
    print(f"| wrongly skipped | {len(wrongly_skipped)} | 0 |")
    print(f"| wrongly used | {len(wrongly_used)} | 0 |")
    print(f"| neither used nor named in skipped | {len(unnamed)} | 0 |")
    print(f"| EXIF-rotated decoded upright | {upright} / {len(rotated)} | all |")
    print("\n| kind | files | used | skipped | wrong |\n|---|---|---|---|---|")
    for kind, (n, u, s, w) in sorted(by_kind.items()):
        print(f"| {kind} | {n} | {u} | {s} | {w} |")
    for kind, path, reason in wrongly_skipped[:10]:
        print(f"wrongly skipped: {kind}: {path}: {reason}", file=sys.stderr)
    for kind, path in wrongly_used[:10]:
        print(f"wrongly used: {kind}: {path}", file=sys.stderr)
    if crashed:
        print(proc.stderr.decode()[-3000:], file=sys.stderr)


# ---------------------------------------------------------------- part 2: kill -9
def _link_subset(src: Path, dst: Path, per_class: int, classes: list[str] | None = None) -> Path:
    for class_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        if classes is None or class_dir.name in classes:
            (dst / class_dir.name).mkdir(parents=True, exist_ok=True)
            for f in sorted(class_dir.iterdir())[:per_class]:
                (dst / class_dir.name / f.name).symlink_to(f)
    return dst


def _small_finetune(data: Path, *, image_size: int, epochs: int, batch_size: int) -> list[str]:
    """`tlcv train` arguments of a small from-scratch fine-tuning run (no --out)."""
    return [
        "train", "--data", str(data), "--strategy", "finetune", "--backbone",
        "mobilenet_v3_small", "--weights", "none", "--image-size", str(image_size),
        "--epochs", str(epochs), "--batch-size", str(batch_size), "--num-workers", "0",
    ]  # fmt: skip


def _jobs(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (command without --out, resume command prefix)."""
    office = _link_subset(
        OFFICE / "amazon", tmp / "office4", 30, ["back_pack", "bike", "calculator", "keyboard"]
    )
    mnist = _link_subset(DIGITS / "mnist" / "train", tmp / "mnist", 40)
    usps = _link_subset(DIGITS / "usps" / "train", tmp / "usps", 40)
    finetune = _small_finetune(office, image_size=64, epochs=6, batch_size=8)
    finetune += ["--patience", "0", "--seed", "5"]
    dann = [
        "adapt",
        "--source",
        str(mnist),
        "--target",
        str(usps),
        "--method",
        "dann",
        "--backbone",
        "lenet",
        "--mode",
        "full",
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--augment",
        "light",
        "--no-plots",
        "--num-workers",
        "0",
        "--seed",
        "3",
    ]
    return {
        "fine-tune (MobileNetV3-S, Office-31 4 classes)": (finetune, ["train", "--resume"]),
        "DANN (LeNet, MNIST -> USPS subsets)": (dann, ["adapt", "--resume"]),
    }


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([*TLCV, *args], env=ENV, capture_output=True, text=True)


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _timed_reference(cmd: list[str], out: Path) -> tuple[float, float]:
    """Run uninterrupted; seconds until the first resume checkpoint existed, and in all."""
    proc = subprocess.Popen([*TLCV, *cmd, "--out", str(out)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    started, first = time.perf_counter(), None
    while proc.poll() is None:
        if first is None and (out / "checkpoints" / "last.ckpt").is_file():
            first = time.perf_counter() - started
        time.sleep(0.02)
    total = time.perf_counter() - started
    return (first or total / 2), total


def _kill_once(cmd: list[str], out: Path, at: float | None, deadline: float) -> str:
    """Start, kill -9 at ``at`` seconds (None: as soon as a checkpoint temp file shows)."""
    proc = subprocess.Popen(
        [*TLCV, *cmd, "--out", str(out)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    moment = "finished before the kill"
    while proc.poll() is None and time.perf_counter() - started < deadline:
        if at is None:
            # Aimed: at a checkpoint write after the first one exists (a kill during the first
            # write leaves nothing to resume; that case is covered by the random moments).
            folder = out / "checkpoints"
            if (folder / "last.ckpt").is_file() and any(folder.glob(".*.tmp")):
                proc.send_signal(signal.SIGKILL)
                moment = f"during a checkpoint write ({time.perf_counter() - started:.1f} s)"
                break
            time.sleep(0.001)
        elif time.perf_counter() - started >= at:
            proc.send_signal(signal.SIGKILL)
            moment = f"at {at:.1f} s"
            break
        else:
            time.sleep(0.01)
    proc.wait()
    return moment


def part_kills(tmp: Path, kills: int, aimed: int, seed: int) -> None:
    rng = random.Random(seed)
    print("\n| run | kill moment | epochs done when killed | resumed | weights identical |")
    print("|---|---|---|---|---|")
    summary = []
    for name, (cmd, resume) in _jobs(tmp).items():
        reference = tmp / f"ref-{len(summary)}"
        first_epoch, total = _timed_reference(cmd, reference)
        if not (reference / "model.safetensors").is_file():
            raise SystemExit(f"{name}: the uninterrupted run failed")
        want = _weights(reference)
        identical = 0
        resumed, k = 0, 0
        # Count only kills that interrupted training after an epoch was saved (a kill after
        # the end or before the first checkpoint tests nothing here); such draws are listed
        # but drawn again, up to 3x the asked number of attempts.
        while resumed < kills and k < 3 * kills:
            out = tmp / f"kill-{len(summary)}-{k}"
            at = None if k < aimed else rng.uniform(first_epoch, 0.85 * total)
            k += 1
            moment = _kill_once(cmd, out, at, deadline=2 * total)
            history = out / "history.csv"
            epochs = len(history.read_text().splitlines()) - 1 if history.is_file() else 0
            again = _run([*resume, str(out)])
            how = "--resume"
            if again.returncode != 0 and "already finished" in again.stderr:
                again, how = subprocess.CompletedProcess([], 0, "", ""), "nothing to resume"
            nothing_saved = ("no checkpoint" in again.stderr) or ("no config.yaml" in again.stderr)
            if again.returncode != 0 and nothing_saved:
                again = _run([*cmd, "--out", str(out)])  # killed before the first epoch ended
                how = "rerun (no epoch had finished)"
            ok = again.returncode == 0 and (out / "model.safetensors").is_file()
            same = ok and _same(want, _weights(out))
            if how == "--resume":
                resumed += 1
                identical += same
            if not ok:
                how += f" FAILED: {again.stderr.strip().splitlines()[-1:]}"
            print(
                f"| {name} | {moment} | {epochs} | {how} | {'yes' if same else 'NO'} |", flush=True
            )
        summary.append((name, identical, resumed, total))
    print("\n| run | interrupted runs resumed to identical weights | goal | uninterrupted run |")
    print("|---|---|---|---|")
    for name, identical, n, total in summary:
        print(f"| {name} | {identical} / {n} | {kills} / {kills} | {total:.0f} s |")


# ---------------------------------------------------------------- part 3: damaged run folders
def _damage(run: Path, case: str) -> None:
    weights, model, classes, config = (
        run / n for n in ("model.safetensors", "model.json", "classes.json", "config.yaml")
    )
    if case == "a pickle in place of model.safetensors":
        weights.write_bytes(b"\x80\x04\x95\x10\x00cos\nsystem\n.")
    elif case == "truncated model.safetensors":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif case == "model.json malformed":
        model.write_text("{not json")
    elif case == "model.json is {}":
        model.write_text("{}")
    elif case == "classes.json malformed":
        classes.write_text("[bike")
    elif case == "classes.json with fewer classes":
        classes.write_text('["back_pack"]')
    elif case == "config.yaml with a !!python/object tag":
        config.write_text("!!python/object/apply:os.system ['touch PWNED']\n")
    elif case == "config.yaml empty":
        config.write_text("")
    elif case == "written by a newer tlcv":
        info = json.loads(model.read_text())
        model.write_text(json.dumps({**info, "format_version": 99}))
    elif case == "half a last.ckpt":
        ckpt = run / "checkpoints" / "last.ckpt"
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
        (run / "model.json").unlink()


BEFORE = {
    "a pickle in place of model.safetensors": "SafetensorError traceback",
    "truncated model.safetensors": "SafetensorError traceback",
    "model.json malformed": "JSONDecodeError traceback",
    "model.json is {}": "KeyError traceback",
    "classes.json malformed": "JSONDecodeError traceback",
    "classes.json with fewer classes": "IndexError traceback in predict",
    "config.yaml with a !!python/object tag": "ConstructorError traceback",
    "config.yaml empty": "TypeError traceback",
    "written by a newer tlcv": "(no format version was recorded)",
    "half a last.ckpt": "PytorchStreamReader traceback",
}


def part_folders(tmp: Path) -> None:
    office = _link_subset(OFFICE / "amazon", tmp / "office2", 6, ["back_pack", "bike"])
    base = tmp / "finished"
    finetune = _small_finetune(office, image_size=32, epochs=1, batch_size=4)
    done = _run([*finetune, "--out", str(base)])
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    image = str(sorted((office / "bike").iterdir())[0])
    print("\n| damaged run folder | before (issue 11) | now: exit code, message |\n|---|---|---|")
    for case, before in BEFORE.items():
        run = tmp / f"damaged-{abs(hash(case))}"
        shutil.copytree(base, run, symlinks=True)
        _damage(run, case)
        if case == "half a last.ckpt":
            got = _run(["train", "--resume", str(run)])
        else:
            got = _run(["predict", str(run), image])
        message = " ".join(got.stderr.split()) or got.stdout.strip()[:200]
        message = message[message.find("error:") :] if "error:" in message else message
        traceback = "Traceback" in got.stderr
        message = message.replace(str(run), "RUN").replace("|", "\\|")
        note = " (TRACEBACK)" if traceback else ""
        print(f"| {case} | {before} | exit {got.returncode}{note}: {message} |")
    assert not Path("PWNED").exists() and not (tmp / "PWNED").exists(), "a payload ran"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="files,kills,folders")
    ap.add_argument("--kills", type=int, default=10, help="kill -9 moments per run kind")
    ap.add_argument("--aimed", type=int, default=3, help="of which aimed at a checkpoint write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--before", help="memory part: also measure this commit's code (git ref)")
    args = ap.parse_args()
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if "files" in parts:
            part_files(Path(tmp))
        if "kills" in parts:
            part_kills(Path(tmp), args.kills, args.aimed, args.seed)
        if "folders" in parts:
            part_folders(Path(tmp))
        if "memory" in parts:
            from robustness_memory import part_memory

            part_memory(Path(tmp), args.before)
        if "hostile" in parts:
            from robustness_hostile import part_hostile

            office = _link_subset(
                OFFICE / "amazon", Path(tmp) / "office-h", 6, ["back_pack", "bike"]
            )
            part_hostile(Path(tmp), office)


if __name__ == "__main__":
    main()
