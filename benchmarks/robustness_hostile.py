"""Every hostile case of issue 33 through the real CLI, for bench_robustness.py's ``hostile``
part: annotations (NaN, class ids, paths leaving the data folder, malformed files), model
files (foreign, altered, unrecorded graphs) and slow or oversized HTTP clients.

The annotation cases are the ones tests/test_hostile_annotations.py defines (one source of
truth); each is trained on in a child process that logs, through a Python audit hook, every
attempt to open the file planted outside the data folder, so "never read" is observed rather
than inferred from the messages.

    .venv/bin/python benchmarks/bench_robustness.py --parts hostile      # ~6 min on 2 cores
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{TESTS}", "COLUMNS": "1000"}

# One child runs every annotation case in-process (one interpreter start, not thirty)
CHILD = r"""
import json, sys, time
from pathlib import Path
opened = []
def audit(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        name = str(args[0])
        if "elsewhere" in name or name == "/etc/passwd":
            opened.append(name)
sys.addaudithook(audit)
import test_hostile_annotations as cases
from conftest import cli_in_process
tmp, fast = Path(sys.argv[1]), sys.argv[2:]
groups = {"NaN / inf": cases.NAN_CASES, "outside the data folder": cases.OUTSIDE_CASES,
          "malformed file": {k: v[0] for k, v in cases.FATAL_CASES.items()}}
ids = {f"yolo class id {i}": (lambda i: lambda root: cases._yolo(root, f"{i} 0.5 0.5 0.2 0.2"))(i)
       for i in ("-1", "-2", "2", "7")}
ids["coco category 5 undeclared"] = lambda root: cases._coco(cases._images(root), [
    {"id": 7, "image_id": 0, "category_id": 5, "bbox": [1, 1, 5, 5]}])
groups["class ids"] = ids
for group, table in groups.items():
    for name, make in table.items():
        case = tmp / f"{group}-{name}".replace(" ", "_").replace("/", "_")
        (case / "data").mkdir(parents=True)
        secret = cases._secret(case)
        make(case / "data", secret) if group == "outside the data folder" else make(case / "data")
        opened.clear()
        started = time.perf_counter()
        done = cli_in_process("train", "--task", "detection", "--data", case / "data", "--out",
                              case / "run", *fast, check=False)
        skipped = case / "run" / "skipped.csv"
        rows = skipped.read_text().splitlines()[1:] if skipped.exists() else []
        print(json.dumps({"group": group, "case": name, "exit": done.returncode,
                          "traceback": "Traceback" in done.stderr,
                          "stderr": [ln for ln in done.stderr.splitlines() if ln.strip()],
                          "skipped": rows, "opened_outside": sorted(set(opened)),
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)
"""

FAST = ["--backbone", "mobilenet_v3_small", "--weights", "none", "--detector", "fcos",
        "--image-size", "64", "--fpn-channels", "64", "--epochs", "1", "--batch-size", "2",
        "--num-workers", "0"]  # fmt: skip


def _cell(text: str, width: int = 110) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def part_annotations(tmp: Path) -> None:
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", CHILD, str(tmp / "ann"), *FAST],
                          env=ENV, capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    print("\n| group | case | exit | traceback | outside file opened | outcome | s |")
    print("|---|---|---|---|---|---|---|")
    for line in done.stdout.splitlines():
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["exit"] == 0:
            reasons = [row.split(",", 1)[-1] for row in r["skipped"]]
            outcome = f"trained; {len(r['skipped'])} named in skipped.csv: " + "; ".join(reasons)
        else:
            errors = [ln for ln in r["stderr"] if "error" in ln.lower()] or r["stderr"][-1:]
            outcome = f"{len(r['stderr'])}-line message: " + " ".join(errors)
        outcome = outcome.replace(str(tmp), "TMP")
        print(
            f"| {r['group']} | {r['case']} | {r['exit']} | {'YES' if r['traceback'] else 'no'}"
            f" | {', '.join(r['opened_outside']) or 'no'} | {_cell(outcome)} | {r['seconds']} |"
        )


def _tlcv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tlcv.cli", *args], env=ENV,
                          capture_output=True, text=True)  # fmt: skip


def part_graphs(tmp: Path, office: Path) -> None:
    """Graphs that are not the one tlcv exported for the run: each must be refused, unrun."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    small = ["train", "--data", str(office), "--strategy", "features", "--backbone",
             "mobilenet_v3_small", "--weights", "none", "--image-size", "32"]  # fmt: skip
    runs = {}
    for name, seed in (("run", "0"), ("other", "1")):
        runs[name] = tmp / f"graphs-{name}"
        for step in ([*small, "--seed", seed, "--out", str(runs[name])],
                     ["export", str(runs[name])]):  # fmt: skip
            got = _tlcv(*step)
            if got.returncode:
                raise SystemExit(got.stderr[-2000:])
    image = str(next(p for p in sorted(office.rglob("*")) if p.is_file()))

    def foreign(graph: Path) -> None:  # another run's graph, given this run's metadata
        mine, theirs = onnx.load(str(graph)), onnx.load(str(runs["other"] / "export/model.onnx"))
        del theirs.metadata_props[:]
        theirs.metadata_props.extend(mine.metadata_props)
        onnx.save(theirs, str(graph))

    def altered(graph: Path) -> None:  # same metadata and shapes, other numbers
        model = onnx.load(str(graph))
        big = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        big.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(big)[::-1].copy(), big.name))
        onnx.save(model, str(graph))

    def unrecorded(graph: Path) -> None:  # model.json never recorded a graph
        info = json.loads((graph.parents[1] / "model.json").read_text())
        info.pop("graphs", None)
        (graph.parents[1] / "model.json").write_text(json.dumps(info))

    cases = {"foreign graph with the run's metadata": foreign, "altered weights": altered,
             "random bytes": lambda g: g.write_bytes(os.urandom(4096)),
             "graph not recorded in model.json": unrecorded}  # fmt: skip
    print("\n| model file case | exit | traceback | graph left as it was | message |")
    print("|---|---|---|---|---|")
    for name, damage in cases.items():
        run = tmp / f"graphs-{name.replace(' ', '_')}"
        shutil.copytree(runs["run"], run, ignore=shutil.ignore_patterns(".lock"))
        graph = run / "export" / "model.onnx"
        damage(graph)
        before = graph.read_bytes()
        got = _tlcv("predict", str(run), image, "--engine", "onnxruntime")
        message = _cell(got.stderr.replace(str(run), "RUN"), 140)
        print(
            f"| {name} | {got.returncode} | {'YES' if 'Traceback' in got.stderr else 'no'} | "
            f"{'yes' if graph.read_bytes() == before else 'NO'} | {message} |"
        )


def _connect(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(data)
    return sock


def part_serve(tmp: Path) -> None:
    """200 slow-loris connections and a 600 MB upload against `tlcv serve` with its defaults."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tlcv.cli", "serve", str(tmp / "graphs-run"),
                               "--port", str(port)], env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        print("\n| serve case | measured |\n|---|---|")
        started = time.perf_counter()
        slow = [_connect(port, b"GET /heal") for _ in range(200)]  # headers never finished
        healthy = _connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        healthy.settimeout(30)
        answered = healthy.recv(64).split(b"\r\n")[0].decode(errors="replace")
        still_open, deadline = 0, time.perf_counter() + 60
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.perf_counter()))
            try:
                while sock.recv(4096):
                    pass
            except TimeoutError:
                still_open += 1
            except OSError:  # reset: closed by the server too
                pass
            sock.close()
        closed_at = time.perf_counter() - started
        print(
            f"| 200 connections sending half a request line, then nothing | /healthz meanwhile: "
            f"{answered}; {200 - still_open} of 200 closed by the server within "
            f"{closed_at:.1f} s; {still_open} still open at 60 s |"
        )
        head = (
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {600 * 2**20}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        ).encode()
        sock, sent, started = _connect(port, head), 0, time.perf_counter()
        sock.settimeout(0.05)
        chunk, answer = b"x" * 2**20, b""
        while sent < 600 * 2**20 and not answer:
            try:
                answer = sock.recv(4096)
                break
            except TimeoutError:
                pass
            try:
                sock.sendall(chunk)
                sent += len(chunk)
            except OSError:
                break
        sock.settimeout(10)
        status = (answer or sock.recv(4096)).split(b"\r\n")[0].decode(errors="replace")
        print(
            f"| 600 MB upload (Content-Length declared) | {status} "
            f"after {time.perf_counter() - started:.2f} s, {sent / 2**20:.0f} MB sent by then |"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def part_hostile(tmp: Path, office: Path) -> None:
    part_annotations(tmp)
    part_graphs(tmp, office)
    part_serve(tmp)
