"""Two-class (lesion / background) segmentation: Dice, IoU and HD95 on constructed masks, the
pooled scores behind the intervals, 0/255 masks, the losses, flip TTA, and the CLI end to end
on a few Kvasir-SEG polyp frames."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchmetrics.functional.segmentation import dice_score

from conftest import DATA, MOBILENET_V2, cli_in_process
from tlcv.tasks.segmentation.data import IGNORE, discover_segmentation
from tlcv.tasks.segmentation.metrics import PixelMetrics
from tlcv.tasks.segmentation.options import LOSSES
from tlcv.tasks.segmentation.scores import ImageScores, hd95, pooled

KVASIR = DATA / "medical" / "kvasir_seg"


def _disc(size: int, radius: float, centre=(50, 50)) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) <= radius**2


def test_dice_iou_hd95_on_constructed_masks():
    truth, predicted = _disc(100, 24), _disc(100, 20)  # concentric: outlines 4 px apart
    scores = ImageScores(["background", "polyp"], IGNORE)
    scores.update("a", predicted.astype(np.uint8), truth.astype(np.uint8))
    row = scores.rows[0]
    inside, outside = predicted.sum(), truth.sum()
    assert row["dice"] == pytest.approx(2 * inside / (inside + outside))
    assert row["iou"] == pytest.approx(inside / outside)
    reference = dice_score(torch.from_numpy(predicted)[None].long(),
                           torch.from_numpy(truth)[None].long(), num_classes=2,
                           include_background=False, input_format="index")  # fmt: skip
    assert row["dice"] == pytest.approx(float(reference), abs=1e-6)
    assert 3.0 <= row["hd95"] <= 5.0  # every outline pixel is about 4 px from the other
    shifted = _disc(100, 20, centre=(50, 60))  # 10 px to the right: the far side is 10 off
    assert 9.0 <= hd95(shifted, _disc(100, 20)) <= 10.0
    # nothing predicted: Dice 0, no outline to measure HD95 from; both empty: a correct "none"
    scores.update("b", np.zeros((100, 100), np.uint8), truth.astype(np.uint8))
    scores.update("c", np.zeros((100, 100), np.uint8), np.zeros((100, 100), np.uint8))
    assert scores.rows[1]["dice"] == 0.0 and scores.rows[1]["hd95"] is None
    assert scores.rows[2]["dice"] == 1.0 and scores.rows[2]["iou"] == 1.0
    result = scores.result(200)
    assert result["dice"] == pytest.approx((row["dice"] + 0 + 1) / 3)
    assert result["hd95"] == pytest.approx(row["hd95"]) and result["hd95_undefined"] == 2
    assert result["sensitivity"] == pytest.approx(inside / (2 * outside))
    low, high = result["intervals"]["dice"]
    assert low <= result["dice"] <= high


def test_pooled_scores_behind_the_intervals_equal_the_pixel_metrics():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    metrics, scores = PixelMetrics(classes), ImageScores(classes, IGNORE)
    for i in range(6):
        truth = rng.integers(0, 3, (20, 30)).astype(np.uint8)
        truth[0] = IGNORE
        predicted = np.where(rng.random((20, 30)) < 0.7, truth % 3, rng.integers(0, 3, (20, 30)))
        predicted = predicted.astype(np.uint8)
        metrics.update(torch.from_numpy(predicted), torch.from_numpy(truth))
        scores.update(f"{i}", predicted, truth)
    expected, mine = metrics.result(), pooled(scores.stacked().sum(0))
    for key in ("miou", "pixel_accuracy", "mean_class_accuracy"):
        assert mine[key] == pytest.approx(expected[key], abs=1e-6)
    result = scores.result(300)
    assert "dice" not in result  # three classes: no two-class headline
    low, high = result["intervals"]["miou"]
    assert low <= expected["miou"] <= high
    wide = high - low
    for i in range(6, 60):  # ten times the images: a narrower interval
        truth = rng.integers(0, 3, (20, 30)).astype(np.uint8)
        predicted = np.where(rng.random((20, 30)) < 0.7, truth, 0).astype(np.uint8)
        scores.update(f"{i}", predicted, truth)
    low, high = scores.result(300)["intervals"]["miou"]
    assert high - low < wide


@pytest.mark.parametrize("table", [False, True], ids=["no-table", "two-class-table"])
def test_masks_saved_as_0_255_are_two_class(tmp_path, table):
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(tmp_path / f"images/{i}.jpg")
        mask = np.zeros((16, 16), np.uint8)
        mask[4:9, 4:9] = 255
        Image.fromarray(mask).save(tmp_path / f"masks/{i}.png")
    if table:
        (tmp_path / "classes.txt").write_text("background\npolyp\n")
    source = discover_segmentation(tmp_path)
    assert source.classes == (["background", "polyp"] if table else ["background", "foreground"])
    decoded = source.format.decode(source.all_items()[0].mask)
    assert decoded.sum() == 25 and set(np.unique(decoded)) == {0, 1}  # 255 is the lesion
    assert any("0/255" in note for note in source.notes)


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_on_constructed_logits(loss):
    from segmentation_models_pytorch.losses import DiceLoss

    from tlcv.tasks.segmentation.objective import SegmentationObjective

    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8)
    target = (torch.rand(2, 8, 8) > 0.6).long()
    target[0, 0] = IGNORE
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE)
    dice = DiceLoss("multiclass", ignore_index=IGNORE)(logits, target)
    expected = {"ce": ce, "dice": dice, "dice+ce": ce + dice}[loss]
    got = SegmentationObjective(2, loss=loss).pixel_loss(logits, target)
    assert float(got) == pytest.approx(float(expected), abs=1e-6)
    perfect = torch.where(target == 1, 20.0, -20.0)[:, None].repeat(1, 2, 1, 1)
    perfect[:, 0] *= -1
    assert float(SegmentationObjective(2, loss=loss).pixel_loss(perfect, target)) < 0.05


def test_hv_flips_turn_image_and_mask_together():
    from torchvision import tv_tensors

    from tlcv.tasks.segmentation.loading import train_transform

    torch.manual_seed(0)
    marked = torch.zeros(3, 40, 40, dtype=torch.uint8)
    marked[:, 2:9, 5:30] = 255  # the image is white exactly where the mask is 1
    mask = (marked[0] > 0).to(torch.uint8)
    seen = set()
    for _ in range(12):
        image, turned = train_transform(40, "none", "hv")(tv_tensors.Image(marked),
                                                          tv_tensors.Mask(mask))  # fmt: skip
        agree = ((image[0] > 127) == (turned == 1)).float().mean()  # padding: void, 255
        assert agree > 0.93  # the same place (resized edges aside; turned apart: ~0.8)
        seen.add(tuple((turned == 1).nonzero().float().mean(0).div(8).round().tolist()))
    assert len(seen) > 2  # upside down and quarter turns, not only mirrors


def test_flip_tta_averages_the_image_and_its_mirror():
    from tlcv.tasks.segmentation.inference import class_scores

    class LeftRight(torch.nn.Module):
        """Scores that grow left to right: only the mirror average makes them flat."""

        image_size = 32
        backbone = SimpleNamespace(
            preprocessing=SimpleNamespace(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        )

        def forward(self, x):
            ramp = torch.linspace(-2, 2, x.shape[-1]).expand(x.shape[0], 1, *x.shape[-2:])
            return torch.cat([ramp, -ramp], 1)

    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    plain = class_scores(LeftRight(), image, None, torch.device("cpu"))
    assert plain[0, 0, 0] < 0.1 and plain[0, 0, -1] > 0.9
    mirrored = class_scores(LeftRight(), image, None, torch.device("cpu"), tta="flip")
    assert torch.allclose(mirrored, torch.full_like(mirrored, 0.5), atol=1e-5)


def test_cli_on_kvasir_polyps_train_evaluate_with_intervals_predict_report(tmp_path):
    rows = ["image,mask,split"]
    for split, n in (("train", 8), ("test", 5)):
        for image in sorted((KVASIR / split / "images").iterdir())[:n]:
            rows.append(f"{image},{KVASIR / split / 'masks' / (image.stem + '.png')},{split}")
    manifest = tmp_path / "polyps.csv"
    manifest.write_text("\n".join(rows) + "\n")
    (tmp_path / "classes.txt").write_text((KVASIR / "classes.txt").read_text())
    run = tmp_path / "run"
    cli_in_process("train", "--data", manifest, "--out", run, "--task", "segmentation",
                   "--backbone", "mobilenet_v2", "--weights", MOBILENET_V2, "--decoder", "unet",
                   "--loss", "dice+ce", "--image-size", "64", "--epochs", "1",
                   "--batch-size", "4")  # fmt: skip
    trained = json.loads((run / "metrics.json").read_text())["test"]
    assert 0 <= trained["dice"] <= 1 and trained["intervals"]["dice"] is not None
    assert "per_image" not in trained  # per-image rows live in evaluate's per_image.csv

    said = cli_in_process("evaluate", run, "--data", manifest, "--tta", "flip",
                          "--bootstrap", "200").stdout  # fmt: skip
    said = " ".join(said.split())
    assert "Dice" in said and "HD95" in said and "95% bootstrap interval (200" in said
    folder = run / "eval" / "polyps.csv"
    result = json.loads((folder / "metrics.json").read_text())
    assert result["tta"] == "flip" and result["n"] == 13 and result["foreground"] == "polyp"
    for key in ("dice", "iou", "sensitivity", "precision", "miou"):
        low, high = result["intervals"][key]
        assert low <= result[key] <= high
    per_image = list(csv.DictReader(open(folder / "per_image.csv")))
    assert len(per_image) == 13
    dice = {Path(r["path"]).stem: float(r["dice"]) for r in per_image}
    assert np.mean(list(dice.values())) == pytest.approx(result["dice"], abs=1e-5)
    assert (folder / "dice.png").is_file() and len(result["overlays"]) == 4
    shown = sorted(dice[Path(p).stem[3:]] for p in result["overlays"])  # "00_<stem>.png"
    assert shown == sorted(dice.values())[:4]  # the panels show the lowest-Dice images

    image = next((KVASIR / "test" / "images").iterdir())
    answer = json.loads(cli_in_process("predict", run, image, "--format", "json", "--tta",
                                       "flip", "--masks", tmp_path / "masks").stdout)  # fmt: skip
    assert np.array(Image.open(answer[0]["mask"])).shape == Image.open(image).size[::-1]
    report = tmp_path / "report.html"
    cli_in_process("report", run, "--out", report)
    text = report.read_text()
    assert "evaluation on polyps.csv" in text and "Dice" in text and "dice" in text
