"""Anomaly detection: the metrics against hand-computed cases, the coreset and the search,
the task end to end from the CLI on real magnetic-tile images (every method), bad input,
and ONNX parity."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import DATA, MOBILENET_V2, cli_in_process
from tlcv.errors import TlcvError
from tlcv.tasks.anomaly import metrics as M
from tlcv.tasks.anomaly.data import discover
from tlcv.tasks.anomaly.methods import METHODS
from tlcv.tasks.anomaly.options import METHODS as METHOD_CHOICES
from tlcv.tasks.anomaly.search import greedy_coreset, nearest

TILE = DATA / "anomaly" / "magnetic_tile"


def tile_subset(root, train: int = 8, per_kind: int = 3):
    """A small MVTec-layout copy of the magnetic tiles (grey, with crack masks)."""
    goods = sorted((TILE / "train" / "good").iterdir())[:train]
    (root / "train" / "good").mkdir(parents=True)
    for p in goods:
        shutil.copy(p, root / "train" / "good" / p.name)
    for kind in ("good", "crack"):
        (root / "test" / kind).mkdir(parents=True)
        for p in sorted((TILE / "test" / kind).iterdir())[:per_kind]:
            shutil.copy(p, root / "test" / kind / p.name)
            if kind != "good":
                (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
                mask = TILE / "ground_truth" / kind / f"{p.stem}_mask.png"
                shutil.copy(mask, root / "ground_truth" / kind / mask.name)
    return root


# --- metrics ---------------------------------------------------------------------------


def test_pro_against_a_hand_computed_case():
    # regions A = pixels 0-1 (0.9, 0.9) and B = 3-4 (0.9, 0.0); ten good pixels: one at 0.5
    mask = np.array([[1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    heat = np.array([[0.9, 0.9, 0.5, 0.9, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    # curve (FPR, PRO): (0, .75) at 0.9, (.1, .75) at 0.5, (1, 1) at 0; at FPR .3 PRO is
    # .75 + .25 * .2 / .9; area .1 * .75 + .2 * (.75 + that) / 2, over .3
    at_limit = 0.75 + 0.25 * 0.2 / 0.9
    expected = (0.1 * 0.75 + 0.2 * (0.75 + at_limit) / 2) / 0.3
    assert M.pro([mask], [heat]) == pytest.approx(expected)
    assert M.pro([mask], [mask.astype(float)]) == pytest.approx(1.0)  # perfect map
    assert M.pro([mask], [1.0 - mask]) == pytest.approx(0.0)  # every good pixel first
    assert M.pro([np.zeros((2, 2))], [np.ones((2, 2))]) is None  # no defect region


def test_image_scores_against_hand_computed_cases():
    labels = np.array([0, 0, 1, 1])
    assert M.auroc(labels, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    f1, at = M.f1_max(labels, np.array([0.1, 0.4, 0.35, 0.8]))
    assert f1 == pytest.approx(0.8) and at == pytest.approx(0.35)  # 2 TP, 1 FP: 4/5
    assert M.auroc(np.array([0, 0]), np.array([0.1, 0.2])) is None  # no defective image
    verdicts = M.at_threshold(labels, np.array([0.1, 0.4, 0.35, 0.8]), 0.5)
    assert verdicts["recall"] == 0.5 and verdicts["precision"] == 1.0
    assert verdicts["false_alarm_rate"] == 0.0


def test_greedy_coreset_covers_every_cluster_and_search_is_exact():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0] * 8, [50.0] * 8, [-50.0] * 8])
    points = torch.cat([c + torch.randn(200, 8, generator=generator) for c in centres])
    picked = greedy_coreset(points, 3, seed=1)
    assert sorted(int(i) // 200 for i in picked) == [0, 1, 2]  # one from each cluster
    assert len(set(greedy_coreset(points, 50, seed=1).tolist())) == 50
    query = torch.randn(37, 8, generator=generator)
    d2, index = nearest(query, points, k=3, chunk=64)  # chunks smaller than the bank
    exact = torch.cdist(query, points).topk(3, largest=False)
    assert torch.equal(index, exact.indices)
    assert torch.allclose(d2.sqrt(), exact.values, atol=1e-3)


def test_padim_gaussians_and_distances_against_numpy_and_scipy():
    from scipy.spatial.distance import mahalanobis

    from tlcv.tasks.anomaly.methods import padim

    generator = torch.Generator().manual_seed(0)
    # 150 images (more than one GEMM chunk) of 6 channels on a 2 x 3 grid, means far from 0
    images = torch.randn(150, 6, 2, 3, generator=generator) * 0.5 + 40.0
    batches = (images[i : i + 16].contiguous(memory_format=torch.channels_last)
               for i in range(0, 150, 16))  # fmt: skip
    head, spec, _ = padim.Padim.fit(batches, {"padim_dims": 4}, seed=3)
    assert spec == {"positions": 6, "dims": 4} and len(set(head.channels.tolist())) == 4
    kept = images[:, head.channels].double().flatten(2).numpy()  # (150, 4, 6)
    query = torch.randn(5, 6, 2, 3, generator=generator) + 40.0
    distances, _ = head(query)
    for position in range(6):
        rows = kept[:, :, position]
        cov = np.cov(rows, rowvar=False) + padim.REGULARISATION * np.eye(4)
        np.testing.assert_allclose(head.mean[position], rows.mean(0), rtol=1e-5)
        inverse = np.linalg.inv(cov)
        np.testing.assert_allclose(head.inverse[position], inverse, rtol=1e-3, atol=1e-3)
        for b in range(5):
            x = query[b, head.channels].flatten(1)[:, position].double().numpy()
            expected = mahalanobis(x, rows.mean(0), inverse)
            assert float(distances[b].flatten()[position]) == pytest.approx(expected, rel=1e-3)


def test_method_choices_match_the_registry():
    assert set(METHODS.names()) == set(METHOD_CHOICES)


# --- the task on real images ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    return tile_subset(tmp_path_factory.mktemp("tiles") / "data")


def _train(data, out, *extra):
    return cli_in_process(
        "train", "--task", "anomaly", "--data", data, "--out", out, "--backbone", "mobilenet_v2",
        "--weights", MOBILENET_V2, "--image-size", "96", "--holdout", "0.25", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_end_to_end_from_the_cli_with_onnx_parity(tmp_path, tiles, method):
    run = tmp_path / "run"
    _train(tiles, run, "--method", method)
    info = json.loads((run / "model.json").read_text())
    assert info["task"] == "anomaly" and info["method"] == method
    assert info["threshold"] > 0 and "held-out good" in info["threshold_source"]
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["n"] == 6 and test["pixel_images"] == 6
    assert all(0 <= test[k] <= 1 for k in ("image_auroc", "pixel_auroc", "pro"))
    assert test["pixel_auroc"] > 0.6  # real cracks, even from six training tiles
    assert (run / "histogram.png").is_file() and list((run / "panels").glob("*.png"))
    shown = cli_in_process("evaluate", run, "--data", tiles, "--bootstrap", "200")
    assert "pixel AUROC" in shown.stdout and "crack" in shown.stdout
    per_image = (run / "eval" / tiles.name / "per_image.csv").read_text().splitlines()
    assert per_image[0] == "path,kind,defective,score" and len(per_image) > 1
    predicted = cli_in_process("predict", run, tiles / "test" / "crack", "--format", "json")
    answers = json.loads(predicted.stdout)
    assert len(answers) == 3 and all(a["verdict"] in ("good", "defective") for a in answers)
    assert all(Image.open(a["heatmap"]).size == Image.open(a["path"]).size for a in answers)
    exported = cli_in_process("export", run)
    assert "score difference" in " ".join(exported.stdout.split())
    check = json.loads((run / "export" / "model.verify.json").read_text())["verification"]
    assert check["max_rel_score_diff"] < 1e-3 and check["same_order"]
    onnx = cli_in_process("predict", run, tiles / "test" / "crack", "--format", "json",
                          "--engine", "onnxruntime")  # fmt: skip
    scores = [a["score"] for a in json.loads(onnx.stdout)]
    assert scores == pytest.approx([a["score"] for a in answers], rel=1e-3)


def test_a_plain_folder_of_good_images_trains_and_has_a_threshold(tmp_path, tiles):
    run = tmp_path / "run"
    _train(tiles / "train" / "good", run, "--coreset", "0.5")
    info = json.loads((run / "model.json").read_text())
    assert info["threshold"] is not None
    assert "test" not in json.loads((run / "metrics.json").read_text())


def test_threshold_is_f1_optimal_on_a_labelled_val_split(tmp_path, tiles):
    data = tmp_path / "data"
    shutil.copytree(tiles, data)
    shutil.copytree(data / "test", data / "val")
    run = tmp_path / "run"
    _train(data, run)
    info = json.loads((run / "model.json").read_text())
    assert "F1-optimal on the labelled val/" in info["threshold_source"]


# --- bad input: one line each ----------------------------------------------------------------


def test_a_defect_folder_in_train_is_refused(tmp_path, tiles):
    data = tmp_path / "data"
    shutil.copytree(tiles, data)
    shutil.copytree(data / "test" / "crack", data / "train" / "crack")
    done = cli_in_process("train", "--task", "anomaly", "--data", data, "--out", tmp_path / "r",
                          check=False)  # fmt: skip
    assert done.returncode != 0 and "defect-free images only" in done.stderr
    assert "test/crack/" in done.stderr and "Traceback" not in done.stderr


def test_missing_and_misfit_masks_are_named_and_left_out_of_pixel_scores(tmp_path, tiles):
    data = tmp_path / "data"
    shutil.copytree(tiles, data)
    masks = sorted((data / "ground_truth" / "crack").iterdir())
    masks[0].unlink()
    Image.new("L", (7, 5)).save(masks[1])  # another size than its image
    source = discover(data)
    reasons = dict(source.missing)
    assert len(reasons) == 2 and any("7x5" in r for r in reasons.values())
    assert any("no mask" in r for r in reasons.values())
    assert sum(i.mask is not None for i in source.test) == 1
    with pytest.raises(TlcvError, match="no mask|7x5"):
        discover(data, strict=True)


def test_a_test_set_without_defects_says_auroc_is_undefined(tmp_path, tiles):
    data = tmp_path / "data"
    shutil.copytree(tiles, data)
    shutil.rmtree(data / "test" / "crack")
    shutil.rmtree(data / "ground_truth")
    run = tmp_path / "run"
    _train(data, run)
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert metrics["image_auroc"] is None and metrics["n_good"] == 3
    assert any("need good and defective" in u for u in metrics["undefined"])
    notes = (run / "notes.txt").read_text()
    assert "need good and defective" in notes


def test_unreadable_images_are_skipped_with_the_reason(tmp_path, tiles):
    data = tmp_path / "data"
    shutil.copytree(tiles, data)
    (data / "train" / "good" / "broken.jpg").write_bytes(b"not a jpeg")
    (data / "test" / "good" / "empty.png").write_bytes(b"")
    run = tmp_path / "run"
    _train(data, run, "--holdout", "0")
    skipped = (run / "skipped.csv").read_text()
    assert "empty.png" in skipped and "broken.jpg" in skipped  # a test and a training image
    assert json.loads((run / "model.json").read_text())["threshold"] is None


def test_large_banks_search_alike_with_faiss_and_torch(monkeypatch):
    from tlcv.tasks.anomaly import search

    generator = torch.Generator().manual_seed(3)
    bank, query = (
        torch.randn(3000, 16, generator=generator),
        torch.randn(50, 16, generator=generator),
    )
    torch_d, torch_i = search.nearest(query, bank, k=2)
    monkeypatch.setattr(search, "FAISS_FROM", 1000)  # the faiss path, on a bank this small
    faiss_d, faiss_i = search.nearest(query, bank, k=2)
    assert torch.equal(torch_i, faiss_i)
    assert torch.allclose(torch_d, faiss_d, rtol=1e-4, atol=1e-4)


def test_binned_pixel_scores_behind_the_intervals_match_the_exact_ones():
    from tlcv.tasks.anomaly import metrics as M
    from tlcv.tasks.anomaly.intervals import PixelHistograms, pixel_intervals

    rng = np.random.default_rng(0)
    masks, maps = [], []
    for i in range(12):
        mask = np.zeros((48, 48), bool)
        if i % 2:
            mask[5:20, 8:30] = True
            mask[35:40, 30:44] = True  # two regions: PRO weighs each region alike
        masks.append(mask)
        maps.append(rng.normal(0, 1, mask.shape) + 1.5 * mask)
    binned = PixelHistograms(masks, maps).scores(np.arange(12))
    flat = np.concatenate([m.ravel() for m in masks])
    exact = M.auroc(flat, np.concatenate([m.ravel() for m in maps]))
    assert binned["pixel_auroc"] == pytest.approx(exact, abs=1e-3)
    assert binned["pro"] == pytest.approx(M.pro(masks, maps), abs=2e-3)
    found = pixel_intervals(masks, maps, 300)
    for key, value in (("pixel_auroc", exact), ("pro", M.pro(masks, maps))):
        low, high = found[key]
        assert low <= value <= high and high - low < 0.1
