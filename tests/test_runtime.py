"""The torch-free ONNX Runtime path (deploy/runtime.py) for every task that has one, and what
keeps a served model safe to expose (serving/access.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from PIL import Image
from test_anomaly import tile_subset
from test_video import link_tracks

from conftest import DATA, MOBILENET_V2, cli_in_process
from tlcv.errors import TlcvError
from tlcv.serving.access import Admission, Metrics, check_binding
from tlcv.serving.app import create_app
from tlcv.tasks import TASKS
from tlcv.tasks.clips.options import FRAME_PICKS, TEMPORAL_HEADS

KVASIR = DATA / "medical" / "kvasir_seg"

# Run in a child process: torch and torchvision cannot be imported there at all
NO_TORCH = """
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Refuse())
"""

CLI_WITHOUT_TORCH = (
    NO_TORCH
    + """
from tlcv.cli import main
sys.argv = ["tlcv", *sys.argv[1:]]
main()
"""
)

SERVE_WITHOUT_TORCH = (
    NO_TORCH
    + """
import json
from fastapi.testclient import TestClient
from tlcv.serving.app import create_app
from tlcv.tasks.clips.options import FRAME_PICKS, TEMPORAL_HEADS
from tlcv.tasks import TASKS
run, image = sys.argv[1:3]
client = TestClient(create_app(run, engine="onnxruntime"))
answer = client.post("/predict", files={"file": ("x.png", open(image, "rb").read())})
picture = client.post("/explain", files={"file": ("x.png", open(image, "rb").read())})
print(json.dumps({"predict": [answer.status_code, answer.json()],
                  "explain": [picture.status_code, picture.headers["content-type"]],
                  "torch": "torch" in sys.modules}))
"""
)


def _scenes(root: Path, n: int = 16) -> Path:
    """Grey scenes with a red square (and a blue one in every other): a detector learns them
    in a few epochs at 64 px."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        image = np.full((60, 80, 3), 128, np.uint8)
        x, y = int(rng.integers(0, 50)), int(rng.integers(0, 30))
        image[y : y + 20, x : x + 20] = (220, 20, 20)
        lines.append(f"s{i}.png;{x};{y};{x + 20};{y + 20};red")
        if i % 2:
            image[5:20, 60:75] = (20, 20, 220)
            lines.append(f"s{i}.png;60;5;75;20;blue")
        Image.fromarray(image).save(root / "images" / f"s{i}.png")
    (root / "boxes.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory, office_run) -> dict[str, tuple[Path, list[str]]]:
    """A small trained run of each task with a torch-free path, and images to ask it about."""
    base = tmp_path_factory.mktemp("runtime")
    common = ["--backbone", "mobilenet_v2", "--weights", str(MOBILENET_V2)]
    seg = base / "seg"
    cli_in_process("train", "--task", "segmentation", "--data", str(KVASIR), "--out", str(seg),
                   "--max-images", "12", "--epochs", "1", "--image-size", "64",
                   *common)  # fmt: skip
    scenes = _scenes(base / "scenes")
    det = base / "det"
    cli_in_process("train", "--task", "detection", "--data", str(scenes), "--out", str(det),
                   "--detector", "fcos", "--fpn-channels", "64", "--image-size", "64",
                   "--epochs", "5", "--batch-size", "4", "--val-fraction", "0.25",
                   "--test-fraction", "0", "--patience", "0", *common)  # fmt: skip
    tiles = tile_subset(base / "tiles")
    anomaly = base / "anomaly"
    cli_in_process("train", "--task", "anomaly", "--data", str(tiles), "--out", str(anomaly),
                   "--image-size", "96", "--holdout", "0.25", *common)  # fmt: skip
    tracks = link_tracks(base / "tracks", {"train": 4})
    clips = base / "clips"
    cli_in_process("train", "--data", str(tracks), "--out", str(clips), "--temporal", "gru",
                   "--frames", "6", "--epochs", "3", *common)  # fmt: skip
    office = sorted(Path(office_run.config["data"]).rglob("*.jpg"))[:3]
    kvasir = sorted((KVASIR / "test" / "images").glob("*"))[:2]
    return {
        "classification": (office_run.path, [str(p) for p in office]),
        "segmentation": (seg, [str(p) for p in kvasir]),
        "detection": (det, [str(scenes / "images" / f"s{i}.png") for i in (1, 2)]),
        "anomaly": (anomaly, [str(p) for p in sorted((tiles / "test").rglob("*.*"))[:3]]),
        "clip-classification": (clips, [str(p) for p in sorted(tracks.rglob("*.mp4"))[::7][:2]]),
    }


def _predict(run: Path, images: list[str], engine: str, out: Path, torch_blocked: bool,
             *extra: str):  # fmt: skip
    args = ["predict", str(run), *images, "--engine", engine, "--format", "json",
            "--masks", str(out), "--score-threshold", "0.05", *extra]  # fmt: skip
    if not torch_blocked:
        return json.loads(cli_in_process(*args).stdout)
    done = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, *args],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _same(torch_answer: dict, onnx_answer: dict) -> None:
    if "top" in torch_answer:
        assert [t["label"] for t in torch_answer["top"]] == [t["label"] for t in onnx_answer["top"]]
        assert np.allclose([t["score"] for t in torch_answer["top"]],
                           [t["score"] for t in onnx_answer["top"]], atol=1e-4)  # fmt: skip
    if "mask" in torch_answer:
        a, b = (np.asarray(Image.open(x[k])) for x, k in ((torch_answer, "mask"),
                                                          (onnx_answer, "mask")))  # fmt: skip
        assert a.shape == b.shape and (a == b).mean() >= 0.999
    if "score" in torch_answer:  # anomaly: the image's score and verdict
        assert onnx_answer["score"] == pytest.approx(torch_answer["score"], rel=1e-3)
        assert onnx_answer["verdict"] == torch_answer["verdict"]
    if "steps" in torch_answer:  # clips: the head's top class after each sampled frame
        assert [s["frame"] for s in torch_answer["steps"]] == [s["frame"] for s in
                                                               onnx_answer["steps"]]  # fmt: skip
        assert [s["label"] for s in torch_answer["steps"]] == [s["label"] for s in
                                                               onnx_answer["steps"]]  # fmt: skip
    if "objects" in torch_answer:
        assert len(torch_answer["objects"]) == len(onnx_answer["objects"]) > 0
        for x, y in zip(torch_answer["objects"], onnx_answer["objects"], strict=True):
            assert x["label"] == y["label"] and np.allclose(x["box"], y["box"], atol=0.2)


@pytest.mark.parametrize("task", TASKS.names())
def test_onnxruntime_predict_and_serve_without_torch(task, task_runs, tmp_path):
    """The graph is written once (with torch); afterwards predict and serve run in a process
    where torch cannot be imported, and answer as the torch engine does."""
    run, images = task_runs[task]
    cli_in_process("export", str(run))  # checks the graph against eager torch
    report = json.loads((run / "export" / "model.verify.json").read_text())
    check = report["verification"]
    if task == "segmentation":
        assert check["mask_pixel_agreement"] >= 0.999
    elif task == "detection":
        assert check["eager_boxes"] > 0 and check["box_match"] >= 0.99
    elif task == "anomaly":
        assert check["max_rel_score_diff"] < 1e-3 and check["same_order"]
    elif task == "clip-classification":
        assert check["top1_agreement"] >= 0.999 and check["max_abs_step_prob_diff"] < 1e-4
    else:
        assert check["onnxruntime_fp32"]["top1_agreement"] >= 0.999
    eager = _predict(run, images, "torch", tmp_path / "torch", torch_blocked=False)
    graph = _predict(run, images, "onnxruntime", tmp_path / "onnx", torch_blocked=True)
    assert [a["path"] for a in eager] == [a["path"] for a in graph]
    for a, b in zip(eager, graph, strict=True):
        _same(a, b)
    if task == "segmentation":  # test-time flips: the same views and average on both engines
        eager = _predict(run, images[:1], "torch", tmp_path / "t", False, "--tta", "hv")
        graph = _predict(run, images[:1], "onnxruntime", tmp_path / "o", True, "--tta", "hv")
        _same(eager[0], graph[0])
    done = subprocess.run([sys.executable, "-c", SERVE_WITHOUT_TORCH, str(run), images[-1]],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 or task == "clip-classification", done.stderr[-2000:]
    if task == "clip-classification":  # the page takes one image: clips are not served
        assert "cannot be served" in done.stderr
        return
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["predict"][0] == 200 and served["predict"][1]["top"] is not None
    assert not served["torch"]
    if task == "classification":  # Grad-CAM needs torch's gradients: a clear 501 without it
        assert served["explain"][0] == 501
    else:
        assert served["explain"] == [200, "image/png"]


def test_a_graph_that_was_not_recorded_is_not_run(office_run):
    image = str(next(Path(office_run.config["data"]).rglob("*.jpg")))
    cli_in_process("predict", str(office_run.path), image, "--engine", "onnxruntime")
    graph = office_run.path / "export" / "model.onnx"  # written on first use, and recorded
    saved = graph.read_bytes()
    try:
        graph.write_bytes(saved[:-10] + b"0123456789")
        done = cli_in_process("predict", str(office_run.path), image, "--engine", "onnxruntime",
                              check=False)  # fmt: skip
        assert done.returncode == 2 and "SHA-256" in " ".join(done.stderr.split())
    finally:
        graph.write_bytes(saved)


@pytest.fixture(scope="module")
def keyed(office_run):
    return TestClient(create_app(office_run.path, engine="onnxruntime", api_key="k3y-123"))


def test_without_the_key_every_route_but_healthz_is_401(keyed, office_run):
    image = next(Path(office_run.config["data"]).rglob("*.jpg")).read_bytes()
    assert keyed.get("/healthz").status_code == 200
    for method, route in [("get", "/"), ("get", "/metadata"), ("get", "/metrics"),
                          ("get", "/docs"), ("get", "/nowhere"), ("post", "/predict"),
                          ("post", "/explain")]:  # fmt: skip
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k3y-123"}):
            answer = getattr(keyed, method)(route, headers=headers)
            assert answer.status_code == 401, (route, headers)
            assert "API key" in answer.json()["detail"]
    good = {"Authorization": "Bearer k3y-123"}
    assert keyed.get("/metadata", headers=good).status_code == 200
    found = keyed.post("/predict", files={"file": ("a.jpg", image)}, headers=good)
    assert found.status_code == 200 and found.json()["top"]


def test_metrics_are_prometheus_text_counting_requests_and_errors(keyed, office_run):
    from prometheus_client.parser import text_string_to_metric_families

    good = {"Authorization": "Bearer k3y-123"}
    keyed.post("/predict", files={"file": ("a.jpg", b"not an image")}, headers=good)
    text = keyed.get("/metrics", headers=good).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = families["tlcv_requests"].samples
    requests = {(s.labels["route"], s.labels["code"]): s.value
                for s in samples if s.name.endswith("_total")}  # fmt: skip
    assert requests[("/predict", "415")] >= 1 and requests[("/metadata", "401")] >= 1
    errors = {(e.labels["route"], e.labels["code"])
              for e in families["tlcv_request_errors"].samples}  # fmt: skip
    assert ("/predict", "415") in errors
    buckets = [s for s in families["tlcv_request_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["route"] == "/healthz"]  # fmt: skip
    assert buckets and buckets[-1].labels["le"] == "+Inf" and buckets[-1].value >= 1


@pytest.mark.parametrize(
    ("host", "key", "insecure", "refused"),
    [("127.0.0.1", None, False, False), ("0.0.0.0", None, False, True),
     ("0.0.0.0", "k", False, False), ("0.0.0.0", None, True, False),
     ("192.168.1.5", None, False, True)],
)  # fmt: skip
def test_binding_beyond_loopback_needs_a_key_or_insecure(host, key, insecure, refused):
    if refused:
        with pytest.raises(TlcvError, match="no API key"):
            check_binding(host, key, insecure)
    else:
        check_binding(host, key, insecure)


def test_serve_cli_refuses_an_open_host_without_a_key(office_run):
    done = cli_in_process("serve", str(office_run.path), "--host", "0.0.0.0", check=False)
    assert done.returncode == 2 and "--insecure" in " ".join(done.stderr.split())


def test_admission_answers_429_when_full_and_503_after_the_timeout():
    """Never a hang: past max_pending a request is refused at once; a slow one gets 503."""

    async def scenario():
        admission = Admission(max_pending=1, timeout=0.5, metrics=Metrics())
        slow = asyncio.ensure_future(admission.run(time.sleep, 0.3))
        await asyncio.sleep(0.05)
        with pytest.raises(HTTPException) as busy:
            await admission.run(time.sleep, 0)
        assert busy.value.status_code == 429 and busy.value.headers["Retry-After"]
        await slow
        start = time.perf_counter()
        with pytest.raises(HTTPException) as late:
            await admission.run(time.sleep, 2.0)
        assert late.value.status_code == 503 and time.perf_counter() - start < 1.5
        assert admission.pending == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("pick", FRAME_PICKS)
@pytest.mark.parametrize("kind", TEMPORAL_HEADS)
def test_a_whole_clip_through_the_head_equals_the_packed_path(kind, pick):
    """The clip graph runs the head without packing (one clip, every frame real): the same
    clip and step logits as forward / step_logits, for clips of any length."""
    import torch

    from tlcv.heads import TemporalHead

    head = TemporalHead(kind, 16, 3, frame_pick=pick).eval()
    for frames in (1, 3, 7):
        feats, lengths = torch.randn(1, frames, 16), torch.tensor([frames])
        clip, steps = head.whole_clips(feats)
        assert torch.allclose(clip, head(feats, lengths), atol=1e-6)
        assert torch.allclose(steps, head.step_logits(feats, lengths), atol=1e-6)


def test_box_matching_counts_class_iou_and_edge_clipped_boxes():
    from tlcv.tasks.detection.export import match_boxes

    boxes = np.array([[0, 0, 10, 10], [50, 5, 50, 20], [0, 0, 10, 10]], np.float32)
    eager = {"boxes": boxes, "labels": np.array([1, 2, 1]),
             "scores": np.array([0.9, 0.3, 0.8], np.float32)}  # fmt: skip
    same = {k: v.copy() for k, v in eager.items()}
    assert match_boxes(eager, same) == (3, 0.0)  # the zero-width box (x1 = x2) included
    moved = {**same, "boxes": same["boxes"] + np.array([1.0, 0, 1.0, 0], np.float32)}
    assert match_boxes(eager, moved)[0] == 0  # IoU 0.82 and 1 px off: not the same boxes
    relabelled = {**same, "labels": np.array([2, 1, 2])}
    assert match_boxes(eager, relabelled)[0] == 0
    rescored = {**same, "scores": same["scores"] + 0.01}
    hits, diff = match_boxes(eager, rescored)
    assert hits == 3 and diff == pytest.approx(0.01, abs=1e-6)
