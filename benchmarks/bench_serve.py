"""`tlcv serve` under load on loopback, per engine (torch, onnxruntime).

Rerun: python benchmarks/bench_serve.py [--requests 2000 --clients 8]
       python benchmarks/bench_serve.py --task segmentation --requests 300 --malformed 60
       (--task detection / anomaly too: every task the page serves)

A MobileNetV2 feature run on 8 Office-31 classes is served by the real CLI (one process per
engine); 8 client threads send 2,000 POST /predict requests with Office-31 photos: requests/s,
p50/p95/p99 latency, errors, the server's peak RSS. Then the same with 200 malformed uploads
mixed in (goal: no 5xx, every bad one a 4xx, every good one a 200), and POST /explain time
per image. With --screenshot, headless Chromium saves the page after an upload as
bench_out/serve_page.png (kept out of the repository: it shows an Office-31 photo).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [
    "back_pack",
    "bike",
    "calculator",
    "headphones",
    "keyboard",
    "laptop_computer",
    "mug",
    "scissors",
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bad_uploads(good: bytes) -> list[bytes]:
    from PIL import Image

    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, format="PNG")
    return [b"", b"not an image at all", good[: len(good) // 3], bomb.getvalue(), b"\x00" * 4096]


def _serve(run: Path, engine: str, port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tlcv.cli",
            "serve",
            str(run),
            "--port",
            str(port),
            "--engine",
            engine,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 300
    import httpx

    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            if server.poll() is not None:
                raise RuntimeError(server.stderr.read().decode()[-2000:]) from None
            time.sleep(0.5)
    raise RuntimeError("server did not start")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


BOUNDARY = "tlcvbenchboundary7c1e"


def multipart(data: bytes) -> bytes:
    """A POST /predict body, encoded once before the clock starts."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"x.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()  # fmt: skip
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def load(port: int, uploads: list[tuple[bytes, bool]], clients: int) -> dict:
    """Send every upload once over ``clients`` threads; latency and status per request. The
    client is http.client on keep-alive connections with bodies encoded beforehand: it shares
    the 2 cores with the server, so it should take as little of them as it can (httpx's
    multipart encoding took a few ms per request from both engines alike)."""
    import http.client
    import threading

    local = threading.local()
    bodies = {id(u): multipart(u[0]) for u in uploads}
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def one(upload: tuple[bytes, bool]) -> tuple[float, int, bool]:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        start = time.perf_counter()
        try:
            local.conn.request("POST", "/predict", body=bodies[id(upload)], headers=headers)
            answer = local.conn.getresponse()
            answer.read()
            status = answer.status
            if answer.getheader("connection", "").lower() == "close":
                local.conn.close()
                del local.conn
        except (OSError, http.client.HTTPException):
            local.conn.close()
            del local.conn
            status = 599  # the connection failed: counted as an error
        return time.perf_counter() - start, status, upload[1]

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, uploads))
    wall = time.perf_counter() - start
    good = sorted(t for t, _, ok in results if ok)

    def pct(q: float) -> float:
        return 1000 * good[min(len(good) - 1, int(q * len(good)))]

    return {
        "requests": len(results),
        "seconds": wall,
        "requests_per_s": len(results) / wall,
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "good_not_200": sum(1 for _, s, ok in results if ok and s != 200),
        "bad_answered_4xx": sum(1 for _, s, ok in results if not ok and 400 <= s < 500),
        "bad": sum(1 for *_, ok in results if not ok),
        "server_errors_5xx": sum(1 for _, s, _ in results if s >= 500),
    }


def explain_time(port: int, images: list[bytes], n: int = 20) -> float:
    import httpx

    with httpx.Client(timeout=120) as client:
        start = time.perf_counter()
        for data in images[:n]:
            assert (
                client.post(
                    f"http://127.0.0.1:{port}/explain",
                    files={"file": ("x.jpg", data, "image/jpeg")},
                ).status_code
                == 200
            )
    return 1000 * (time.perf_counter() - start) / n


def screenshot(port: int, image: Path, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1100,760",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        browser.find_element(By.ID, "file").send_keys(str(image))
        WebDriverWait(browser, 120).until(
            lambda b: b.execute_script(
                "const i = document.getElementById('overlay');"
                "return !i.hidden && i.naturalWidth > 0"
            )
        )
        browser.save_screenshot(str(out))
    finally:
        browser.quit()


def _classification_run(shared: Path, tmp: Path):
    """A MobileNetV2 features run on 8 Office-31 classes, and their photos to upload."""
    from tlcv import api

    office = shared / "data" / "office31" / "amazon"
    files = [p for c in CLASSES for p in sorted((office / c).iterdir())[:25]]
    data = tmp / "data"
    for c in CLASSES:
        (data / c).mkdir(parents=True)
        for p in sorted((office / c).iterdir())[:25]:
            (data / c / p.name).symlink_to(p)
    run = api.train(data, tmp / "run", strategy="features", backbone="mobilenet_v2",
                    weights=str(shared / "weights" / "mobilenet_v2-b0353104.pth"))  # fmt: skip
    return run, files


def _segmentation_run(shared: Path, tmp: Path):
    """A MobileNetV2 U-Net fine-tuned briefly on Kvasir-SEG (256 px), and the test frames."""
    from tlcv import api

    kvasir = shared / "data" / "medical" / "kvasir_seg"
    run = api.train(kvasir, tmp / "run", task="segmentation", backbone="mobilenet_v2",
                    weights=str(shared / "weights" / "mobilenet_v2-b0353104.pth"),
                    max_images=60, epochs=1)  # fmt: skip
    return run, sorted((kvasir / "test" / "images").iterdir())


def _detection_run(shared: Path, tmp: Path):
    """FCOS on MobileNetV2 (512 px) trained briefly on GTSDB scenes, and the scenes."""
    from tlcv import api

    gtsdb = shared / "data" / "gtsdb" / "train"
    run = api.train(gtsdb, tmp / "run", task="detection", backbone="mobilenet_v2",
                    weights=str(shared / "weights" / "mobilenet_v2-b0353104.pth"),
                    detector="fcos", image_size=512, fpn_channels=64, max_images=30,
                    epochs=1)  # fmt: skip
    return run, sorted((gtsdb / "images").iterdir())[:60]


def _anomaly_run(shared: Path, tmp: Path):
    """PatchCore on MVTec bottle (the registry defaults), and its test images."""
    from tlcv import api

    bottle = shared / "data" / "anomaly" / "mvtec_bottle"
    run = api.train(bottle, tmp / "run", task="anomaly", backbone="mobilenet_v2",
                    weights=str(shared / "weights" / "mobilenet_v2-b0353104.pth"))  # fmt: skip
    return run, sorted(p for p in (bottle / "test").rglob("*") if p.suffix in (".png", ".jpg"))[:60]


RUNS = {"classification": _classification_run, "segmentation": _segmentation_run,
        "detection": _detection_run, "anomaly": _anomaly_run}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--malformed", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--engines", default="torch,onnxruntime")
    parser.add_argument("--screenshot", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "serve.json")
    parser.add_argument("--task", default="classification", choices=list(RUNS),
                        help="clip runs are not served: the page takes one image")  # fmt: skip
    args = parser.parse_args()
    from tlcv import api

    result: dict = {"date": time.strftime("%Y-%m-%d"), "clients": args.clients, "task": args.task}
    with tempfile.TemporaryDirectory() as tmp:
        run, files = RUNS[args.task](args.shared, Path(tmp))
        images = [p.read_bytes() for p in files]
        api.export(run.path)  # as a deployment would: the graph exists before serving starts
        rng = random.Random(0)
        plain = [(images[i % len(images)], True) for i in range(args.requests)]
        bad = _bad_uploads(images[0])
        mixed = plain + [(bad[i % len(bad)], False) for i in range(args.malformed)]
        rng.shuffle(mixed)
        for engine in args.engines.split(","):
            port = _port()
            server = _serve(run.path, engine, port)
            try:
                row = {"load": load(port, plain, args.clients)}
                row["with_malformed"] = load(port, mixed, args.clients)
                row["peak_rss_mb"] = _peak_rss_mb(server.pid)  # before /explain (Grad-CAM
                row["explain_ms_per_image"] = explain_time(port, images)  # loads torch)
                row["peak_rss_after_explain_mb"] = _peak_rss_mb(server.pid)
                if args.screenshot and engine == "torch":
                    screenshot(port, files[len(files) // 2], args.out.parent / "serve_page.png")
            finally:
                server.terminate()
                server.wait(timeout=60)
            result[engine] = row
            print(engine, json.dumps(row, indent=1), flush=True)
        if {"torch", "onnxruntime"} <= set(result):
            result["onnxruntime_over_torch_requests_per_s"] = round(
                result["onnxruntime"]["load"]["requests_per_s"]
                / result["torch"]["load"]["requests_per_s"], 2)  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
