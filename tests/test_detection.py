"""Object detection: every annotation format with a malformed line, bad boxes named with file
and line, mAP against a hand-computed case, every detector, and the CLI on GTSDB scenes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import tlcv

from conftest import DATA, MOBILENET_V2, kill_after_first_checkpoint, tlcv_torchrun
from tlcv.errors import TlcvError
from tlcv.tasks.detection.data import discover_detection, split_items

GTSDB = DATA / "gtsdb" / "train"
SUPER = {
    "prohibitory": [*range(6), 7, 8, 9, 10, 15, 16],
    "danger": [11, *range(18, 32)],
    "mandatory": list(range(33, 41)),
    "other": [6, 12, 13, 14, 17, 32, 41, 42],
}


def _scenes(root, n: int = 6):
    """Grey images, each with a red square (class "red") and some a blue one ("blue")."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    boxes = []
    for i in range(n):
        image = np.full((60, 80, 3), 128, np.uint8)
        x, y = int(rng.integers(0, 50)), int(rng.integers(0, 30))
        image[y : y + 20, x : x + 20] = (220, 20, 20)
        boxes.append((f"s{i}.png", x, y, x + 20, y + 20, "red"))
        if i % 2:
            image[5:20, 60:75] = (20, 20, 220)
            boxes.append((f"s{i}.png", 60, 5, 75, 20, "blue"))
        Image.fromarray(image).save(root / "images" / f"s{i}.png")
    return boxes


def test_box_list_with_header_negatives_and_bad_lines(tmp_path):
    boxes = _scenes(tmp_path)
    Image.new("RGB", (80, 60)).save(tmp_path / "images" / "empty.png")  # listed nowhere
    lines = [
        "file;x1;y1;x2;y2;class",
        *(";".join(map(str, b)) for b in boxes),
        "s0.png;10;10;5;5;red",
        "s0.png;70;50;200;90;red",
        "s0.png;1;2;3",
        "gone.png;1;1;9;9;red",
        "s1.png;a;b;c;d;red",
    ]
    (tmp_path / "gt.txt").write_text("\n".join(lines) + "\n")
    source = discover_detection(tmp_path)
    assert source.classes == ["blue", "red"] and source.format == "box list"
    items = {it.path.split("/")[-1]: it for it in source.all_items()}
    assert items["empty.png"].boxes == () and len(items["s1.png"].boxes) == 2
    reasons = " | ".join(f"{w}: {r}" for w, r in source.missing)
    assert "gt.txt:11: box of zero or negative size" in reasons
    assert "gt.txt:12: box (70.0,50.0,200.0,90.0) outside the 80x60 image" in reasons
    assert "gt.txt:13: expected file;x1;y1;x2;y2;class" in reasons
    assert "gt.txt:14: gone.png is listed but not found" in reasons
    assert "gt.txt:15: coordinates are not numbers" in reasons
    with pytest.raises(TlcvError, match="gt.txt:13: expected file"):
        discover_detection(tmp_path, strict=True)


def test_pascal_voc_coco_and_yolo(tmp_path):
    boxes = _scenes(tmp_path / "voc")
    (tmp_path / "voc" / "Annotations").mkdir()
    (tmp_path / "voc" / "images").rename(tmp_path / "voc" / "JPEGImages")
    for name in sorted({b[0] for b in boxes}):
        objects = "".join(
            f"<object><name>{c}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for f, x1, y1, x2, y2, c in boxes
            if f == name
        )
        (tmp_path / "voc" / "Annotations" / f"{name[:-4]}.xml").write_text(
            f"<annotation><filename>{name}</filename>{objects}</annotation>"
        )
    (tmp_path / "voc" / "Annotations" / "broken.xml").write_text("<annotation><filename>")
    voc = discover_detection(tmp_path / "voc")
    assert voc.format == "pascal voc" and sum(len(it.boxes) for it in voc.all_items()) == 9
    assert any("broken.xml" in w and "does not parse" in r for w, r in voc.missing)

    _scenes(tmp_path / "coco")
    names = sorted({b[0] for b in boxes})
    coco = {
        "images": [{"id": i, "file_name": n} for i, n in enumerate(names)],
        "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}],
        "annotations": [
            {
                "id": j,
                "image_id": names.index(f),
                "category_id": 1 if c == "red" else 2,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
            }
            for j, (f, x1, y1, x2, y2, c) in enumerate(boxes)
        ]
        + [{"id": 99, "image_id": 0}],
    }
    (tmp_path / "coco" / "annotations.json").write_text(json.dumps(coco))
    parsed = discover_detection(tmp_path / "coco")
    assert parsed.classes == ["red", "blue"]  # the file's category order
    assert any("annotation 99" in w and "malformed" in r for w, r in parsed.missing)

    _scenes(tmp_path / "yolo")
    (tmp_path / "yolo" / "labels").mkdir()
    (tmp_path / "yolo" / "classes.txt").write_text("red\nblue\n")
    for name in names:
        rows = [
            f"{0 if c == 'red' else 1} {(x1 + x2) / 160} {(y1 + y2) / 120} {(x2 - x1) / 80} "
            f"{(y2 - y1) / 60}"
            for f, x1, y1, x2, y2, c in boxes
            if f == name
        ]
        (tmp_path / "yolo" / "labels" / f"{name[:-4]}.txt").write_text("\n".join(rows) + "\nbad\n")
    yolo = discover_detection(tmp_path / "yolo")
    first = next(it for it in yolo.all_items() if it.path.endswith("s0.png"))
    assert np.allclose(first.boxes[0], boxes[0][1:5], atol=0.01)
    assert any("s0.txt:2" in w for w, _ in yolo.missing)


def test_class_map_groups_and_drops(tmp_path):
    _scenes(tmp_path)
    boxes = _scenes(tmp_path)
    (tmp_path / "gt.txt").write_text("\n".join(";".join(map(str, b)) for b in boxes) + "\n")
    (tmp_path / "map.csv").write_text("from,to\nred,warm\nblue,\n")
    source = discover_detection(tmp_path, class_map=tmp_path / "map.csv")
    assert source.classes == ["warm"] and any("dropped" in n for n in source.notes)
    parts = split_items(source.all_items(), val_fraction=0.2, test_fraction=0.2, seed=0, shots=2)
    assert len(parts["train"]) == 2 and len(parts["val"]) == 1 and len(parts["test"]) == 1


def test_map_against_a_hand_computed_case():
    """One class, two true boxes; three detections: a hit (0.9), a miss (0.8), a hit (0.7).
    Precision-recall points: (0.5, 1.0), (0.5, 0.5), (1.0, 0.667): COCO's 101-point
    interpolated AP@0.5 = (51 * 1.0 + 50 * 0.667) / 101."""
    from tlcv.tasks.detection.objective import box_metric

    metric = box_metric(class_metrics=True)
    truth = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]),
        "labels": torch.tensor([1, 1]),
    }
    predicted = {
        "boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]]),
        "scores": torch.tensor([0.9, 0.8, 0.7]),
        "labels": torch.tensor([1, 1, 1]),
    }
    metric.update([predicted], [truth])
    result = metric.compute()
    assert float(result["map_50"]) == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101, abs=1e-3)
    assert float(result["mar_100"]) == pytest.approx(1.0)


def test_object_crop_keeps_the_chosen_object_inside_the_window():
    from torchvision import tv_tensors

    from tlcv.engine.seeding import seeded
    from tlcv.tasks.detection.loading import ObjectCrop

    image = tv_tensors.Image(torch.zeros(3, 400, 680, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[600.0, 350, 630, 380]]), format="XYXY", canvas_size=(400, 680)
    )
    crop = ObjectCrop(128, towards_object=1.0)
    for index in range(20):
        with seeded(0, 0, index):
            window, target = crop(image, {"boxes": boxes})
        assert window.shape[-2:] == (128, 128)
        (box,) = target["boxes"].tolist()  # the whole object, shifted into the window
        assert box[2] - box[0] == 30 and box[3] - box[1] == 30
        assert min(box) >= 0 and max(box) <= 128
    small = ObjectCrop(512)(image[..., :100, :100], {"boxes": boxes[:0]})[0]
    assert small.shape[-2:] == (512, 512)  # smaller than the window: padded


@pytest.mark.parametrize("detector", ["fasterrcnn", "retinanet", "fcos"])
def test_torchvision_coco_detectors_load_into_the_same_layout(tmp_path, detector):
    """A torchvision *_resnet50_fpn state dict loads tensor for tensor: with the same classes
    and anchors both give the same boxes; with other classes the class layers are re-sized."""
    import torchvision

    from tlcv.backbones import create_backbone
    from tlcv.errors import TlcvError
    from tlcv.tasks.detection.coco import COCO_MODELS, load_coco
    from tlcv.tasks.detection.model import PROPOSALS, build_model

    name = COCO_MODELS[detector][0]
    sizes = dict(min_size=128, max_size=224)
    if detector == "fasterrcnn":
        sizes.update(PROPOSALS)  # tlcv's proposal counts (not weights) for few-object scenes
    theirs = torchvision.models.get_model(
        name, weights=None, weights_backbone=None, num_classes=5, **sizes
    ).eval()
    state = theirs.state_dict()
    generator = torch.Generator().manual_seed(0)
    for key, value in state.items():  # frozen BN statistics that are not the identity
        if key.endswith(("running_mean", "running_var")):
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    file = tmp_path / f"{name}.pth"
    torch.save(state, file)
    spec = {"detector": detector, "num_classes": 4, "image_size": 128, "max_size": 224}
    anchors = theirs.anchor_generator if detector != "fasterrcnn" else theirs.rpn.anchor_generator
    spec["anchors"] = [int(s[0] if detector != "fcos" else s[0] * 2) for s in anchors.sizes]
    ours, _ = build_model(create_backbone("resnet50", "none"), spec)
    used, fresh = load_coco(ours, detector, str(file))
    assert used == str(file) and fresh == []
    image = torch.rand(3, 120, 200, generator=generator)
    with torch.no_grad():
        (mine,), (reference,) = ours.eval()([image]), theirs([image])
    assert torch.allclose(mine["scores"], reference["scores"], atol=1e-4)
    assert torch.allclose(mine["boxes"], reference["boxes"], atol=1e-2)
    other, _ = build_model(ours.backbone, {**spec, "num_classes": 2})  # the same encoder
    assert load_coco(other, detector, str(file))[1]  # class layers re-sized
    losses = other.train()(
        [image, image],
        [{"boxes": torch.tensor([[9.0, 9, 60, 60]]), "labels": torch.tensor([1])}] * 2,
    )
    assert all(torch.isfinite(v) for v in losses.values())
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(TlcvError, match="not a state dict of torchvision"):
        load_coco(other, detector, str(tmp_path / "other.pth"))


def test_cli_on_gtsdb_scenes_train_evaluate_predict(tmp_path):
    """12 real road scenes at reduced scale through the four super-classes: the whole path."""
    lines = (GTSDB / "gt.txt").read_text().splitlines()
    names = sorted({ln.split(";")[0] for ln in lines})[:10]
    data = tmp_path / "gtsdb"
    (data / "images").mkdir(parents=True)
    for name in [*names, "00108.jpg"]:  # a scene without signs, not in gt.txt: a negative
        if (GTSDB / "images" / name).is_file():
            # copied: links leading out of the data folder are refused by default
            shutil.copy(GTSDB / "images" / name, data / "images" / name)
    (data / "gt.txt").write_text("\n".join(ln for ln in lines if ln.split(";")[0] in names) + "\n")
    mapping = tmp_path / "super.csv"
    mapping.write_text("from,to\n" + "".join(f"{i},{g}\n" for g, ids in SUPER.items() for i in ids))
    run = tmp_path / "run"
    done = tlcv(
        "train",
        "--task",
        "detection",
        "--data",
        data,
        "--class-map",
        mapping,
        "--out",
        run,
        "--backbone",
        "mobilenet_v2",
        "--weights",
        MOBILENET_V2,
        "--detector",
        "fcos",
        "--image-size",
        "256",
        "--train-crop",
        "128",
        "--fpn-channels",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--val-fraction",
        "0.2",
        "--test-fraction",
        "0",
    )
    assert "mAP@0.5" in done.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["val"]["map50"] <= 1 and metrics["selection"]["monitor"] == "val_map50"
    printed = " ".join(tlcv("evaluate", run, "--data", data, "--bootstrap", "100").stdout.split())
    assert "mAP@0.5" in printed and "AP@[.5:.95]" in printed and "precision-recall:" in printed
    result = json.loads((run / "eval" / "gtsdb" / "metrics.json").read_text())
    assert result["bootstrap"]["resamples"] == 100 and set(result["intervals"]) == {
        "map50", "map", "recall"}  # fmt: skip
    boxes = json.loads((run / "eval" / "gtsdb" / "detections.json").read_text())
    assert len(boxes) == result["n"] and {"truth", "predicted", "path"} <= set(boxes[0])
    assert result["task"] == "detection" and result["n"] == len(names) + 1
    assert (run / "eval" / "gtsdb" / "pr_curve.png").is_file() and len(result["drawn"]) == 4
    image = GTSDB / "images" / names[0]
    answer = json.loads(
        tlcv(
            "predict",
            run,
            image,
            "--format",
            "json",
            "--score-threshold",
            "0.01",
            "--masks",
            tmp_path / "boxes",
        ).stdout
    )
    assert Image.open(answer[0]["drawn"]).size == (1360, 800)  # drawn at the image's own size
    assert all(set(o) == {"box", "label", "score"} for o in answer[0]["objects"])


def _scene_folder(root):
    boxes = _scenes(root, n=8)
    (root / "boxes.csv").write_text("".join(";".join(map(str, b)) + "\n" for b in boxes))
    return root


def _small_train_args(data, out, epochs: int = 2) -> list:
    """FCOS on an untrained MobileNetV2 at 64 px: seconds an epoch."""
    return [
        "train",
        "--task",
        "detection",
        "--data",
        data,
        "--out",
        out,
        "--backbone",
        "mobilenet_v2",
        "--weights",
        "none",
        "--detector",
        "fcos",
        "--fpn-channels",
        "64",
        "--image-size",
        "64",
        "--epochs",
        str(epochs),
        "--batch-size",
        "2",
        "--val-fraction",
        "0.25",
        "--test-fraction",
        "0",
        "--patience",
        "0",
    ]


def test_torchrun_two_processes_train_detection(tmp_path):
    """DDP on gloo: each process validates its share; mAP is gathered across both."""
    data, out = _scene_folder(tmp_path / "scenes"), tmp_path / "ddp"
    tlcv_torchrun(_small_train_args(data, out), 29538)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"]["epochs_run"] == 2 and 0 <= metrics["val"]["map50"] <= 1


def test_kill_9_and_resume_gives_the_same_detector(tmp_path):
    """The engine's resume under a detector: killed after its first epoch and resumed, the run
    ends with the weights of a run never interrupted."""
    from safetensors.torch import load_file

    data = _scene_folder(tmp_path / "scenes")
    tlcv(*_small_train_args(data, tmp_path / "straight", 3))
    out = tmp_path / "killed"
    kill_after_first_checkpoint(_small_train_args(data, out, 3), out)
    tlcv("train", "--resume", out)
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(out / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
