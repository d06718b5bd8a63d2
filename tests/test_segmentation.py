"""Semantic segmentation: layouts, bad input, the metric by hand, every decoder and strategy,
and the CLI end to end on real CamVid frames at reduced scale."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from test_cli import tlcv

from conftest import (
    DATA,
    MOBILENET_V2,
    cli_in_process,
    kill_after_first_checkpoint,
    tlcv_torchrun,
)
from tlcv.errors import TlcvError
from tlcv.tasks.segmentation.data import IGNORE, discover_segmentation, split_pairs
from tlcv.tasks.segmentation.metrics import PixelMetrics

CAMVID = DATA / "camvid"
COLOURS = {"sky": (128, 128, 128), "road": (128, 64, 128), "void": (0, 0, 0)}


def _scene(rng: np.random.Generator, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A learnable scene: a grey sky band over a purple road band, a void stripe between."""
    cut = int(rng.integers(h // 3, 2 * h // 3))
    image = np.zeros((h, w, 3), np.uint8)
    image[:cut] = (200, 200, 210)
    image[cut:] = (120, 60, 130)
    image = np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[cut:] = 1
    mask[cut - 1 : cut + 1] = 2  # "void" in the class tables below
    return image, mask


def _write_index(root, n: int = 6, split: str | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = root / split if split else root
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, mask = _scene(rng)
        Image.fromarray(image).save(base / "images" / f"f{i:02d}.jpg")
        Image.fromarray(mask).save(base / "masks" / f"f{i:02d}.png")
    (root / "classes.txt").write_text("sky\nroad\nvoid\n")
    return root


@pytest.fixture
def index_data(tmp_path):
    return _write_index(tmp_path / "scenes", n=16)


def test_metric_against_a_hand_computed_case():
    """2 classes, void pixels ignored: IoU(a) = 2/4, IoU(b) = 1/3, pixel acc. 3/5."""
    truth = torch.tensor([[0, 0, 0, 1, IGNORE, 1]])
    predicted = torch.tensor([[0, 0, 1, 0, 1, 1]])
    # class 0: TP 2, FP 1 (pos 3), FN 1 (pos 2) -> 2/4; class 1: TP 1, FP 1, FN 1 -> 1/3
    metrics = PixelMetrics(["a", "b"])
    metrics.update(predicted, truth)
    result = metrics.result()
    assert result["per_class"][0]["iou"] == pytest.approx(0.5)
    assert result["per_class"][1]["iou"] == pytest.approx(1 / 3)
    assert result["miou"] == pytest.approx((0.5 + 1 / 3) / 2)
    assert result["pixel_accuracy"] == pytest.approx(3 / 5)
    assert result["pixels"] == 5  # the void pixel is not counted
    assert result["mean_class_accuracy"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_metric_leaves_out_a_class_absent_from_truth_and_prediction():
    metrics = PixelMetrics(["a", "b", "c"])
    metrics.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    result = metrics.result()
    assert result["per_class"][2]["iou"] is None
    assert result["miou"] == pytest.approx((0.5 + 0.5) / 2)


def test_index_masks_void_rows_and_random_split(index_data):
    source = discover_segmentation(index_data)
    assert source.classes == ["sky", "road"]
    mask = source.format.decode(source.all_items()[0].mask)
    assert set(np.unique(mask)) == {0, 1, IGNORE}  # "void" row -> ignored
    parts, _ = split_pairs(source, val_fraction=0.25, test_fraction=0.25, seed=0, shots=2)
    assert len(parts["train"]) == 2 and parts["val"] and parts["test"]
    assert not {p.path for p in parts["train"]} & {p.path for p in parts["test"]}


def test_colour_masks_with_a_colour_table(tmp_path):
    root = tmp_path / "rgb"
    _write_index(root, n=3)
    (root / "classes.txt").unlink()
    for file in (root / "masks").iterdir():
        index = np.array(Image.open(file))
        table = np.array([COLOURS["sky"], COLOURS["road"], COLOURS["void"]], np.uint8)
        Image.fromarray(table[index]).save(file)
    rows = "name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in COLOURS.items())
    (root / "classes.csv").write_text(rows)
    source = discover_segmentation(root)
    assert source.classes == ["sky", "road"] and source.format.kind == "rgb"
    decoded = source.format.decode(source.all_items()[0].mask)
    assert set(np.unique(decoded)) == {0, 1, IGNORE}


def test_manifest_with_splits(index_data):
    manifest = index_data / "list.csv"
    rows = ["image,mask,split"] + [
        f"images/f{i:02d}.jpg,masks/f{i:02d}.png,{'train' if i < 6 else 'val'}" for i in range(8)
    ]
    manifest.write_text("\n".join(rows) + "\nimages/gone.jpg,masks/gone.png,train\n")
    source = discover_segmentation(manifest)
    assert len(source.splits["train"]) == 6 and len(source.splits["val"]) == 2
    assert any("gone" in path and "not found" in why for path, why in source.missing)


def test_bad_pairs_are_listed_with_the_reason_or_fatal_when_strict(index_data):
    masks, images = index_data / "masks", index_data / "images"
    (images / "lonely.jpg").write_bytes((images / "f00.jpg").read_bytes())  # no mask
    (masks / "orphan.png").write_bytes((masks / "f00.png").read_bytes())  # no image
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "f01.png")  # size mismatch
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(masks / "f02.png")  # unknown value
    (images / "f03.jpg").write_bytes(b"not a jpeg")  # unreadable
    source = discover_segmentation(index_data)
    reasons = {path.split("/")[-1]: why for path, why in source.missing}
    assert "no mask" in reasons["lonely.jpg"]
    assert "without an image" in reasons["orphan.png"]
    assert "64x48 but its mask 10x10" in reasons["f01.jpg"]
    assert "7 are neither a class nor void" in reasons["f02.jpg"]
    assert "--ignore-index 7" in reasons["f02.jpg"]
    assert "cannot read" in reasons["f03.jpg"]
    assert len(source.all_items()) == 16 - 3
    with pytest.raises(TlcvError):
        discover_segmentation(index_data, strict=True)


def test_unknown_colour_is_named(tmp_path):
    root = tmp_path / "rgb"
    _write_index(root, n=2)
    (root / "classes.txt").unlink()
    (root / "classes.csv").write_text("sky,128,128,128\nroad,128,64,128\n")
    Image.fromarray(np.full((48, 64, 3), (1, 2, 3), np.uint8)).save(root / "masks" / "f00.png")
    with pytest.raises(TlcvError, match="#010203"):
        discover_segmentation(root, strict=True)


@pytest.mark.parametrize("strategy", ["finetune", "features", "scratch"])
def test_every_strategy_learns_the_synthetic_scenes(tmp_path, index_data, strategy):
    from tlcv import api
    from tlcv.tasks.segmentation import STRATEGIES as SEGMENTATION_STRATEGIES

    assert strategy in SEGMENTATION_STRATEGIES.names()
    run = api.train(
        index_data,
        tmp_path / strategy,
        task="segmentation",
        strategy=strategy,
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=64,
        epochs=6,
        batch_size=4,
        lr=3e-3,
        warmup_epochs=0.5,
        decoder="fpn",
        val_fraction=0.25,
        test_fraction=0.0,
        num_workers=0,
    )
    assert run.info["task"] == "segmentation" and run.info["strategy"] == strategy
    if strategy == "features":  # the encoder never moved
        from tlcv.backbones import create_backbone, state_fingerprint

        fresh = create_backbone("mobilenet_v2", str(MOBILENET_V2))
        assert state_fingerprint(run.model().backbone.net) == state_fingerprint(fresh.net)
    if strategy != "scratch":  # two colour bands: pretrained features separate them at once
        assert run.metrics["val"]["pixel_accuracy"] > 0.9


@pytest.fixture(scope="module")
def camvid_small(tmp_path_factory):
    """6 train + 3 val CamVid frames through a manifest (nothing copied but the class names)."""
    root = tmp_path_factory.mktemp("camvid")
    rows = ["image,mask,split"]
    for split, n in (("train", 6), ("val", 3)):
        for image in sorted((CAMVID / split / "images").iterdir())[:n]:
            rows.append(f"{image},{CAMVID / split / 'masks' / (image.stem + '.png')},{split}")
    (root / "frames.csv").write_text("\n".join(rows) + "\n")
    (root / "classes.txt").write_text((CAMVID / "classes.txt").read_text())
    return root / "frames.csv"


def test_cli_on_camvid_frames_train_evaluate_predict(tmp_path, camvid_small):
    run = tmp_path / "run"
    refused = cli_in_process(
        "train", "--data", camvid_small, "--out", run, "--task", "segmentation", check=False
    )
    assert refused.returncode != 0 and "--ignore-index 11" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = tlcv(
        "train",
        "--data",
        camvid_small,
        "--out",
        run,
        "--task",
        "segmentation",
        "--backbone",
        "mobilenet_v2",
        "--weights",
        MOBILENET_V2,
        "--strategy",
        "finetune",
        "--decoder",
        "unet",
        "--image-size",
        "96",
        "--epochs",
        "2",
        "--batch-size",
        "3",
        "--ignore-index",
        "11",
        "--overwrite",
    )
    assert "mIoU" in done.stdout
    # the console says what tlcv does, once: no library banners, tips or doubled lines
    console = done.stdout + done.stderr
    assert "Tip:" not in console and "GPU available" not in console and "INFO:" not in console
    for name in ("config.yaml", "model.safetensors", "history.csv", "metrics.json"):
        assert (run / name).is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 < metrics["val"]["miou"] <= 1.0 and metrics["val"]["n"] == 3
    assert len(metrics["val"]["per_class"]) == 11

    # the rest in-process: the training above was the real command's start
    evaluated = cli_in_process("evaluate", run, "--data", camvid_small)  # the printed summary
    said = " ".join(evaluated.stdout.split())
    assert "mIoU" in said and "pixel acc" in said and "IoU" in said and "overlays:" in said
    result = json.loads((run / "eval" / "frames.csv" / "metrics.json").read_text())
    assert result["task"] == "segmentation" and result["n"] == 9
    low, high = result["intervals"]["miou"]  # 9 frames resampled
    assert low <= result["miou"] <= high and "[" in said
    per_image = list(csv.DictReader(open(run / "eval" / "frames.csv" / "per_image.csv")))
    assert len(per_image) == 9 and "intersection:sky" in per_image[0]
    assert len(result["overlays"]) == 4 and all(map(lambda p: open(p, "rb"), result["overlays"]))
    per_class = list(csv.DictReader(open(run / "eval" / "frames.csv" / "per_class.csv")))
    assert [r["class"] for r in per_class][:2] == ["sky", "building"]

    image = next((CAMVID / "val" / "images").iterdir())
    masks = tmp_path / "masks"
    answer = json.loads(
        cli_in_process("predict", run, image, "--format", "json", "--masks", masks).stdout
    )
    mask = np.array(Image.open(answer[0]["mask"]))
    assert mask.shape == (360, 480) and mask.max() < 11  # the image's own size
    assert sum(answer[0]["fractions"].values()) == pytest.approx(1.0, abs=1e-3)
    windowed = cli_in_process(
        "predict", run, image, "--format", "json", "--masks", masks, "--window", "64"
    )
    assert json.loads(windowed.stdout)[0]["fractions"]


def test_experiments_and_report_take_segmentation_runs(tmp_path, index_data):
    """--shots counts training images, the score is mIoU; the report shows IoU bars and panels."""
    common = (
        "--data",
        index_data,
        "--backbone",
        "mobilenet_v2",
        "--weights",
        MOBILENET_V2,
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--seeds",
        "1",
    )
    efficiency = tmp_path / "efficiency"
    tlcv(
        "experiment",
        "data-efficiency",
        *common,
        "--strategies",
        "finetune",
        "--shots",
        "4",
        "--out",
        efficiency,
    )
    rows = [json.loads(line) for line in (efficiency / "results.jsonl").read_text().splitlines()]
    assert [r["n_train"] for r in rows] == [4]  # --shots counts images (of 11 for training)
    assert all(r["metric"] == "test mIoU" and 0 <= r["score"] <= 1 for r in rows)
    convergence = tmp_path / "convergence"
    tlcv("experiment", "convergence", *common, "--out", convergence)
    summary = json.loads((convergence / "summary.json").read_text())
    assert summary["metric"] == "val_miou"
    assert {row["strategy"] for row in summary["table"]} == {"finetune", "scratch"}
    assert all("test_miou" in row for row in summary["table"])
    run = next((efficiency / "runs").iterdir())
    assert len(list((run / "overlays").glob("*.png"))) == 2  # the val split's 2 images
    html = tmp_path / "report.html"
    tlcv("report", run, efficiency, convergence, "--out", html)
    text = html.read_text()
    # two classes (sky, road; void aside): the two-class headline, Dice first
    assert "IoU per class" in text and "image | truth | prediction" in text and "Dice" in text


def _train_args(data, out, epochs: int = 3) -> list:
    return [
        "train",
        "--task",
        "segmentation",
        "--data",
        data,
        "--out",
        out,
        "--backbone",
        "mobilenet_v2",
        "--weights",
        MOBILENET_V2,
        "--strategy",
        "finetune",
        "--image-size",
        "64",
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--patience",
        "0",
        "--seed",
        "3",
        "--num-workers",
        "0",
    ]


def test_kill_9_and_resume_gives_the_same_weights(tmp_path, index_data):
    tlcv(*_train_args(index_data, tmp_path / "straight"))
    out = tmp_path / "killed"
    kill_after_first_checkpoint(_train_args(index_data, out), out)
    tlcv("train", "--resume", out)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_processes_train_segmentation(tmp_path, index_data):
    out = tmp_path / "ddp"
    tlcv_torchrun(_train_args(index_data, out, 2), 29537)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"]["epochs_run"] == 2 and 0 < metrics["val"]["miou"] <= 1
