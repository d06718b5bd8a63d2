"""Classical baseline, data-efficiency experiment and reports, on small real subsets."""

import json
import shutil
import statistics

import numpy as np
import pytest
import torch
from PIL import Image
from test_cli import tlcv

import tlcv as tlcv_api
from conftest import DATA, MOBILENET_V2, cli_in_process, link_subset
from tlcv.api import evaluate, predict, train
from tlcv.backbones import create_backbone
from tlcv.backbones.classical import hog_dim
from tlcv.data import eval_transform, normalize
from tlcv.errors import TlcvError
from tlcv.experiments import get_experiment
from tlcv.reporting import build_report


def test_hog_features_match_scikit_image_directly():
    from skimage.color import rgb2gray
    from skimage.feature import hog

    path = next((DATA / "cifar10" / "test" / "cat").iterdir())
    backbone = create_backbone("hog_color", "none")
    pixels = eval_transform(backbone.preprocessing)(Image.open(path).convert("RGB"))
    ours = backbone(normalize(pixels[None], backbone.preprocessing, torch.device("cpu")))[0]
    image = pixels.permute(1, 2, 0).numpy() / 255.0
    expected = hog(rgb2gray(image), orientations=9, pixels_per_cell=(8, 8),
                   cells_per_block=(2, 2), block_norm="L2-Hys")  # fmt: skip
    assert ours.shape[0] == hog_dim() + 48
    np.testing.assert_allclose(ours[: hog_dim()].numpy(), expected, rtol=1e-5, atol=1e-6)
    colour = ours[hog_dim() :].numpy().reshape(3, 16)
    np.testing.assert_allclose(colour.sum(1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """MNIST with a fixed test/ folder: 15 training and 8 test images per digit."""
    base = tmp_path_factory.mktemp("digits") / "mnist"
    link_subset(DATA / "digits" / "mnist" / "train", base / "train", 15)
    link_subset(DATA / "digits" / "mnist" / "test", base / "test", 8)
    return base


def test_classical_strategy_is_a_full_run(digits, tmp_path):
    run = train(digits, tmp_path / "hog", strategy="classical", classifier="svm")
    assert run.info["strategy"] == "classical" and run.info["backbone"] == "hog_color"
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.4  # chance is 0.1
    assert evaluate(run, digits / "test")["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    image = next((digits / "test" / "3").iterdir())
    assert predict(run, [image])[0]["top"][0]["label"] in run.classes


@pytest.fixture(scope="module")
def experiment(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "de"
    # classifier svm: its grid takes a third of logistic regression's time on HOG features
    summary = get_experiment("data-efficiency")(
        digits, out, strategies="features,classical", shots="2,40", seeds=2,
        image_size=32, classifier="svm", echo=lambda row: None,
    )  # fmt: skip
    return out, summary


def test_data_efficiency_has_every_point_with_spreads_from_the_seeds(experiment):
    out, summary = experiment
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    cells = {(r["strategy"], r["shots"], r["seed"]) for r in rows}
    assert cells == {
        (s, k, seed) for s in ("features", "classical") for k in ("2", "40") for seed in (0, 1)
    }
    assert len({r["n_test"] for r in rows}) == 1  # one test set for every cell
    for point in summary["table"]:
        key = (point["strategy"], point["shots"])
        values = [r["test_accuracy"] for r in rows if (r["strategy"], r["shots"]) == key]
        assert point["n_seeds"] == 2
        assert point["mean"] == pytest.approx(statistics.mean(values), abs=1e-4)
        assert point["std"] == pytest.approx(statistics.pstdev(values), abs=1e-4)
    one_shot = [r for r in rows if r["shots"] == "2" and r["strategy"] == "classical"]
    assert len({r["run"] for r in one_shot}) == 2  # different draws per seed
    assert any("has only" in n for n in summary["notes"])  # 40 asked, 15 exist: said so
    assert (out / "data_efficiency.png").stat().st_size > 5000


def test_a_rerun_experiment_skips_finished_cells(experiment, digits):
    out, _ = experiment
    again = get_experiment("data-efficiency")(
        digits, out, strategies="features,classical", shots="2,40", seeds=2, image_size=32,
        classifier="svm", echo=lambda row: pytest.fail("a finished cell ran again"),
    )  # fmt: skip
    assert again["resumed_cells"] == 8


def test_report_holds_every_plot_and_table(experiment, digits, tmp_path):
    out, _ = experiment
    run = train(digits, tmp_path / "ft", strategy="finetune", backbone="lenet", weights="none",
                epochs=2, image_size=28, batch_size=32, num_workers=0)  # fmt: skip
    html, md = tlcv_api.report([out, run.path], tmp_path / "report" / "r.html")
    text, markdown = html.read_text(), md.read_text()
    # experiment: curve; fine-tuning run: learning curves, confusion, per-class accuracy
    assert text.count("data:image/png;base64,") == 4 == markdown.count("![")
    assert f"| experiment data-efficiency: de | {digits} | 2 |" in markdown  # seeds per point
    captions = (
        "data efficiency",
        "learning curves",
        "confusion matrix (test)",
        "per-class accuracy (test)",
        "mean ± std over seeds",
        "environment",
    )
    for caption in captions:
        assert caption in text and caption in markdown
    assert " ± " in markdown.split("mean ± std over seeds", 1)[1]  # each mean with its spread
    assert all((md.parent / line.rsplit("(", 1)[1].rstrip(")")).is_file()
               for line in markdown.splitlines() if line.startswith("!["))  # fmt: skip
    with pytest.raises(TlcvError, match="no finished run or experiment"):
        build_report([tmp_path / "report"], tmp_path / "x.html")
    mixed = tmp_path / "mixed"  # a rerun with more seeds for one strategy: counts differ
    shutil.copytree(out, mixed)
    with open(mixed / "results.jsonl", "a") as fh:
        fh.write(json.dumps({"cell": "features/shots=2/seed=2", "strategy": "features"}) + "\n")
    _, md = tlcv_api.report([mixed], tmp_path / "mixed.html")
    assert f"| experiment data-efficiency: mixed | {digits} | 2-3 |" in md.read_text()


def test_experiment_cli_and_its_errors(digits, tmp_path):
    config = tmp_path / "cells.yaml"
    config.write_text("val_fraction: 0.3\nshots: '2'\nclassifier: svm\n")  # train keys reach cells
    done = tlcv("experiment", "data-efficiency", "--data", digits, "--strategies", "classical",
                "--seeds", 1, "--config", config, "--out", tmp_path / "e")  # fmt: skip
    assert "classical" in done.stdout and (tmp_path / "e" / "summary.json").is_file()
    cell = json.loads((tmp_path / "e" / "summary.json").read_text())["table"]
    assert [row["shots"] for row in cell] == ["2"]
    run_config = (tmp_path / "e" / "runs" / "classical-2-seed0" / "config.yaml").read_text()
    assert "val_fraction: 0.3" in run_config
    config.write_text("per_class: 3\n")  # data-efficiency sets it per cell: refused, not ignored
    code, said = _cli_in_process("experiment", "data-efficiency", "--data", digits,
                                 "--config", config, "--out", tmp_path / "p")  # fmt: skip
    assert code == 2 and "per_class" in said and "Traceback" not in said
    code, said = _cli_in_process("experiment", "nonsense", "--data", digits, "--out", tmp_path)
    assert code == 2 and "data-efficiency" in said
    code, said = _cli_in_process("experiment", "data-efficiency", "--data", digits, "--out",
                                 tmp_path / "y", "--strategies", "features,magic")  # fmt: skip
    assert code == 2 and "magic" in said and "Traceback" not in said
    code, said = _cli_in_process("experiment", "convergence", "--data", digits, "--out",
                                 tmp_path / "z", "--strategies", "features")  # fmt: skip
    assert code == 2 and "trained strategies" in said
    empty = tmp_path / "empty"
    empty.mkdir()
    code, said = _cli_in_process("report", empty, "--out", tmp_path / "r.html")
    assert code == 2 and "no finished run" in said


def _cli_in_process(*args) -> tuple[int, str]:
    """Exit code and stderr (whitespace folded) of an in-process CLI call."""
    done = cli_in_process(*args, check=False)
    return done.returncode, " ".join(done.stderr.split())


def test_convergence_compares_pretrained_and_scratch_curves(tmp_path):
    data = link_subset(DATA / "cifar10" / "train", tmp_path / "cifar", 8)
    out = tmp_path / "conv"
    summary = tlcv_api.experiment(
        "convergence", data, out, seeds=1, backbone="mobilenet_v2", weights=str(MOBILENET_V2),
        image_size=32, epochs=2, batch_size=32, num_workers=0,
    )  # fmt: skip
    assert {r["strategy"] for r in summary["table"]} == {"finetune", "scratch"}
    for name, curve in summary["curves"].items():
        assert [c["epoch"] for c in curve] == [1, 2], name
        assert all(c["seconds_mean"] > 0 and 0 <= c["val_acc_mean"] <= 1 for c in curve)
    assert 0 < summary["target"] <= 1
    assert all(0 <= row["test_accuracy"] <= 1 for row in summary["table"])  # best-val checkpoint
    for row in summary["table"]:  # every run reaches the common level, so every row has a time
        assert 0 < row["common_level"] <= 1
        assert 1 <= row["epochs_to_common"] <= 2 and row["seconds_to_common"] > 0
    assert (out / "convergence.png").stat().st_size > 5000
    _, md = tlcv_api.report([out], tmp_path / "conv.html")
    assert md.read_text().count("| scratch |") == 1 + 2  # summary row + one row per epoch
    with pytest.raises(TlcvError, match="trained strategies"):
        get_experiment("convergence")(data, tmp_path / "x", strategies="features,scratch")


def test_generalization_scores_every_domain_pair_with_and_without_adaptation(tmp_path):
    data = tmp_path / "digits"
    for domain in ("usps", "mnist"):
        link_subset(DATA / "digits" / domain / "train", data / domain / "train", 10)
        link_subset(DATA / "digits" / domain / "test", data / domain / "test", 5)
    out = tmp_path / "gen"
    config = tmp_path / "svm.yaml"  # a `tlcv train` key for every cell: the linear SVM's grid
    config.write_text("classifier: svm\n")  # is a third of logistic regression's time on HOG
    done = tlcv("experiment", "generalization", "--data", data, "--strategies", "classical",
                "--methods", "mcc", "--image-size", 32, "--epochs", 1, "--out", out,
                "--config", config)  # fmt: skip
    assert "adapt:mcc" in done.stdout
    summary = json.loads((out / "summary.json").read_text())
    pairs = {(p["model"], p["source"], p["target"]) for p in summary["pairs"]}
    assert pairs == {
        ("classical", "usps", "usps"), ("classical", "usps", "mnist"),
        ("classical", "mnist", "mnist"), ("classical", "mnist", "usps"),
        ("adapt:mcc", "usps", "mnist"), ("adapt:mcc", "mnist", "usps"),
    }  # fmt: skip
    classical = next(r for r in summary["table"] if r["model"] == "classical")
    assert classical["gap"] == pytest.approx(classical["in_domain"] - classical["cross_domain"])
    assert (out / "generalization.png").is_file()
    _, md = tlcv_api.report([out], tmp_path / "gen.html")
    assert "source → target pair" in md.read_text()
    assert md.read_text().count("| adapt:mcc |") == 1 + 2  # summary row + its two pairs
    bad = tlcv("experiment", "generalization", "--data", data, "--domains", "usps,svhn",
               "--out", tmp_path / "x", check=False)  # fmt: skip
    said = " ".join(bad.stderr.split())  # the console wraps long paths at any space
    assert bad.returncode == 2 and "not found" in said and "svhn" in said
