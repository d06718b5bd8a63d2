"""One contract test per registered entry, so a failure names its entry and hides no other
(timm's test_models.py, smp's base tests): every task end to end on tiny data (train ->
evaluate -> predict -> export or its refusal -> served predict or its refusal -> explain or its
refusal -> report), every backbone's pyramid taps, decoder, detector, adaptation method,
validator and explainer."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import MOBILENET_V2
from tlcv.adaptation.methods import METHODS, AdaptationMethod, DomainBatch, build_methods
from tlcv.adaptation.validators import VALIDATORS, ValidationData
from tlcv.backbones import create_backbone, list_backbones
from tlcv.backbones.pyramid import STRIDES, find_taps
from tlcv.backbones.registry import BACKBONES
from tlcv.errors import TlcvError
from tlcv.interpret import EXPLAINERS
from tlcv.tasks import TASKS
from tlcv.tasks.detection.model import DETECTORS
from tlcv.tasks.detection.model import build_model as build_detector
from tlcv.tasks.detection.options import DETECTORS as DETECTOR_CHOICES
from tlcv.tasks.segmentation.model import DECODERS
from tlcv.tasks.segmentation.model import build_model as build_segmenter
from tlcv.tasks.segmentation.options import DECODERS as DECODER_CHOICES

# --- tasks: tiny data a task trains on in seconds, and the options that keep it tiny ---------


def _squares(root, n: int = 6):
    """Two classes of 48 px images: a red or a blue square on grey."""
    rng = np.random.default_rng(0)
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / label).mkdir(parents=True)
        for i in range(n):
            image = np.full((48, 48, 3), 128, np.uint8)
            x, y = rng.integers(0, 24, 2)
            image[y : y + 20, x : x + 20] = colour
            Image.fromarray(image).save(root / label / f"{i}.png")
    return root, {"strategy": "features", "image_size": 64}


def _clips(root):
    """Two classes of 6-frame clips: brightening or darkening."""
    from videofiles import write_video

    for label, step in (("up", 30), ("down", -30)):
        (root / label).mkdir(parents=True)
        for i in range(4):
            start = 100 + 5 * i
            frames = [np.full((32, 32, 3), start + step * t // 3, np.uint8) for t in range(6)]
            write_video(root / label / f"{i}.mp4", frames)
    options = {"strategy": "features", "temporal": "mean", "frames": 4, "image_size": 64}
    return root, options


def _segmentation_scenes(root):
    from test_segmentation import _write_index

    return _write_index(root, n=6), {"strategy": "finetune", "decoder": "lraspp",
                                     "image_size": 64, "epochs": 1}  # fmt: skip


def _detection_scenes(root):
    from test_detection import _scenes

    boxes = _scenes(root)
    (root / "gt.txt").write_text("\n".join(";".join(map(str, b)) for b in boxes))
    return root, {"strategy": "finetune", "detector": "fcos", "image_size": 64, "epochs": 1}


def _tiles(root):
    from test_anomaly import tile_subset

    return tile_subset(root, train=6, per_kind=2), {"image_size": 64, "holdout": 0.3}


TINY = {
    "anomaly": _tiles,
    "classification": _squares,
    "clip-classification": _clips,
    "segmentation": _segmentation_scenes,
    "detection": _detection_scenes,
}


@pytest.fixture(scope="module", params=TASKS.names())
def task_run(request, tmp_path_factory):
    from tlcv import api

    name = request.param
    if name not in TINY:
        pytest.fail(f"task {name!r} has no tiny data here: add a builder to TINY")
    root = tmp_path_factory.mktemp(name.replace("-", "_"))
    data, options = TINY[name](root / "data")
    run = api.train(
        data, root / "run", task=name, backbone="mobilenet_v2", weights=str(MOBILENET_V2),
        batch_size=4, val_fraction=0.25, test_fraction=0.25, seed=0, **options,
    )  # fmt: skip
    return TASKS.get(name)(), data, run


def _inputs(data) -> list[str]:
    """Three files predict can take: images, or clips (never masks or labels)."""
    found = [p for p in sorted(data.rglob("*")) if p.suffix in (".png", ".jpg", ".mp4")]
    return [str(p) for p in found if "masks" not in p.parts][:3]


def test_the_task_trains_evaluates_and_predicts(task_run):
    from tlcv import api

    task, data, run = task_run
    assert run.info["task"] == task.name and task.description
    assert {"val", "test"} & set(run.metrics)
    scores = api.evaluate(run, data, bootstrap=50)
    assert all(key in scores for _, key in task.score_columns), sorted(scores)
    # every headline score carries its interval (None only where a resample leaves it undefined)
    headline = scores.get("headline") or task.score_columns
    assert all(key in scores["intervals"] for _, key in headline), scores["intervals"]
    assert scores["bootstrap"]["resamples"] == 50
    answers = api.predict(run, _inputs(data))
    assert len(answers) == 3 and not any("error" in a for a in answers), answers
    rows = task.prediction_rows(answers)  # a one-epoch detector may find nothing: a header
    assert len({len(r) for r in rows}) == 1  # one header, rows as wide


def test_the_task_exports_or_says_why_not(task_run, tmp_path):
    from tlcv import api

    task, _, run = task_run
    reason = task.export_refusal(run)
    if reason is None:
        report = api.export(run, out=str(tmp_path / "model.onnx"))
        check = report["verification"]
        if "onnxruntime_fp32" in check:  # a classifier's graph: the same top class
            assert check["onnxruntime_fp32"]["top1_agreement"] == 1.0
        elif "top1_agreement" in check:  # clips: the same class per clip
            assert check["top1_agreement"] == 1.0, check
        elif "mask_pixel_agreement" in check:  # masks: the same class per pixel
            assert check["mask_pixel_agreement"] >= 0.999, check
        elif "box_match" in check:  # boxes: found again (a one-epoch detector may find none)
            assert check["box_match"] is None or check["box_match"] >= 0.99, check
        else:  # a graph of scores: the same scores
            assert check["max_rel_score_diff"] < 1e-3, check
        assert report["exporter"] and Path(report["file"]).is_file()
    else:
        with pytest.raises(TlcvError, match=f"{task.name} runs cannot be exported"):
            api.export(run, out=str(tmp_path / "model.onnx"))


def test_the_task_is_served_or_says_why_not(task_run):
    from fastapi.testclient import TestClient

    from tlcv.serving.app import create_app

    task, data, run = task_run
    if task.serve_refusal:
        with pytest.raises(TlcvError, match="cannot be served"):
            create_app(run.path)
        return
    client = TestClient(create_app(run.path))
    assert client.get("/metadata").json()["page"] == task.page_labels
    image = next(p for p in map(Path, _inputs(data))).read_bytes()
    answer = client.post("/predict", files={"file": ("x.png", image, "image/png")})
    assert answer.status_code == 200 and "top" in answer.json(), answer.text
    picture = client.post("/explain", files={"file": ("x.png", image, "image/png")})
    assert picture.status_code == 200
    assert Image.open(io.BytesIO(picture.content)).format == "PNG"


def test_the_page_serves_the_task_in_a_headless_browser(task_run, tmp_path):
    """Each served task's page, on the torch-free ONNX Runtime engine: an upload answered
    and its picture drawn, no error shown."""
    from test_serve import served, upload_in_browser

    task, data, run = task_run
    if task.serve_refusal:
        return  # test_the_task_is_served_or_says_why_not checks the refusal
    image = Path(next(p for p in _inputs(data)))
    with served(run.path, "--engine", "onnxruntime") as url:
        upload_in_browser(url, image, tmp_path / "page.png")


def test_the_task_explains_or_says_why_not(task_run, tmp_path):
    from tlcv import api

    task, data, run = task_run
    if task.explain_refusal:
        with pytest.raises(TlcvError, match="no class-activation maps"):
            api.explain(run, _inputs(data)[:1], tmp_path)
        return
    answers = api.explain(run, _inputs(data)[:1], tmp_path)
    assert answers and all("error" not in a for a in answers), answers
    assert all(Image.open(a["file"]).format == "PNG" for a in answers if "file" in a)


def test_the_task_has_its_report_section(task_run, tmp_path):
    from tlcv.reporting import build_report

    task, _, run = task_run
    html, markdown = build_report([run.path], tmp_path / "report")
    text = markdown.read_text()
    scored = next(run.metrics[k] for k in ("test", "val") if k in run.metrics)
    headline = scored.get("headline") or task.score_columns  # two-class masks: Dice first
    assert task.name in text and headline[0][0] in text


# --- backbones: the stride 2-32 pyramid the dense tasks read, or a one-line refusal -------

NO_PYRAMID = {"alexnet", "lenet", "hog", "hog_color", "hog_color_lbp"}  # no stride-2..32 maps


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_has_pyramid_taps_or_refuses(name):
    spec = BACKBONES.get(name)
    with torch.device("meta"):  # shapes only: no memory, no weights
        net = spec.strip_head(spec.build())
    if name in NO_PYRAMID:
        with pytest.raises(TlcvError, match="no feature map at stride"):
            find_taps(net)
        return
    taps, channels = find_taps(net)
    assert len(taps) == len(STRIDES) == len(set(taps)) and all(c > 0 for c in channels)
    modules = dict(net.named_modules())
    assert all(t in modules for t in taps)


# --- decoders and detectors --------------------------------------------------------------


def test_decoder_and_detector_choices_match_their_registries():
    assert sorted(DECODERS.names()) == sorted(DECODER_CHOICES)
    assert sorted(DETECTORS.names()) == sorted(DETECTOR_CHOICES)


@pytest.fixture(scope="module")
def random_mobilenet():
    return create_backbone("mobilenet_v2", "none")


@pytest.mark.parametrize("name", DECODERS.names())
def test_every_decoder_builds_and_keeps_the_input_size(name, random_mobilenet):
    model, spec = build_segmenter(random_mobilenet, name, 3, 64)
    out = model.eval()(torch.zeros(1, 3, 64, 96))
    assert out.shape == (1, 3, 64, 96)
    assert spec["taps"] == ["features.1", "features.3", "features.6", "features.13", "features"]
    assert model.image_size == spec["image_size"] == 64  # the model owns its scale


@pytest.mark.parametrize("name", DETECTORS.names())
def test_every_detector_trains_and_predicts(name, random_mobilenet):
    image = torch.rand(3, 96, 128)
    target = {"boxes": torch.tensor([[10.0, 10, 40, 40]]), "labels": torch.tensor([1])}
    spec = {"detector": name, "num_classes": 2, "image_size": 96, "max_size": 160,
            "anchors": [16, 32, 64, 128, 256], "fpn_channels": 64}  # fmt: skip
    model, _ = build_detector(random_mobilenet, spec)
    losses = model.train()([image, image.flip(-1)], [target, target])  # ssdlite: 2+
    assert all(torch.isfinite(v) for v in losses.values())
    (out,) = model.eval()([image])
    assert out["boxes"].shape[-1] == 4 and (out["labels"] >= 1).all()


# --- adaptation methods, validators, explainers -----------------------------------------


@pytest.mark.parametrize("name", METHODS.names())
def test_every_adaptation_method_gives_finite_differentiable_terms(name):
    torch.manual_seed(0)
    outputs = METHODS.get(name).outputs[0]
    methods = build_methods(name, 16, 4, outputs=outputs)
    f_s, f_t = torch.randn(8, 16, requires_grad=True), torch.randn(8, 16) + 1.5
    f_t.requires_grad_(True)
    logits_s, logits_t = f_s @ torch.randn(16, 4), f_t @ torch.randn(16, 4)
    batch = DomainBatch(f_s, f_t, logits_s, logits_t, progress=0.5)
    if outputs == "pixel":  # dense: per-pixel logits of 8 x 8 images, no features
        f_t = torch.randn(8, 4, 8, 8, requires_grad=True)
        batch = DomainBatch(None, None, torch.randn(8, 4, 8, 8), f_t * 3, progress=0.5)
    terms = {k: v for m in methods for k, v in m.loss(batch).items()}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in terms.values()), terms
    if terms:  # a method that adds terms moves the target features
        sum(terms.values()).backward()
        assert f_t.grad is not None and torch.isfinite(f_t.grad).all()
    else:  # no loss term: source-only, a flag (adabn) or a change of the inputs (fda)
        assert (
            name == "source-only"
            or any(m.recalibrates_bn for m in methods)
            or any(type(m).source_images is not AdaptationMethod.source_images for m in methods)
        ), name


@pytest.mark.parametrize("name", VALIDATORS.names())
def test_every_validator_gives_a_finite_score(name):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 4
    data = ValidationData(
        source_features=torch.randn(40, 3, generator=g),
        source_logits=torch.randn(40, 4, generator=g) + 4 * torch.eye(4)[labels],
        source_labels=labels,
        target_features=torch.randn(60, 3, generator=g),
        target_logits=torch.randn(60, 4, generator=g),
    )
    assert math.isfinite(float(VALIDATORS.get(name)(data)))


@pytest.mark.parametrize("name", EXPLAINERS.names())
def test_every_explainer_gives_a_map_per_image(name, random_mobilenet):
    from tlcv.heads.model import ClassifierModel

    model = ClassifierModel(random_mobilenet, torch.nn.Linear(1280, 3)).eval()
    layer = dict(random_mobilenet.net.named_modules())[random_mobilenet.spec.cam_layer]
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    with torch.enable_grad():
        heat = EXPLAINERS.get(name)(model, layer, x, torch.tensor([0, 2]))
    assert heat.shape[0] == 2 and heat.shape[-2:] == (64, 64) and torch.isfinite(heat).all()
