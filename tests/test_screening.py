"""Two-class classifiers read as a screen: the threshold and the temperature fitted on
validation logits, ECE, and the CLI end to end on BreastMNIST (benign vs malignant)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DATA, MOBILENET_V2, cli_in_process
from tlcv.evaluation.binary import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    softmax,
)


def test_youden_and_target_sensitivity_thresholds_on_constructed_scores():
    positive = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.65, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95])
    youden = choose_threshold(positive, score)
    # at 0.6: 5 of 6 positives and all 4 negatives but the 0.65 one -> J = 5/6 - 1/4;
    # at 0.7: 4/6 - 0; at 0.4: 6/6 - 1/4 = 0.75, the best
    assert youden["threshold"] == pytest.approx(0.4)
    assert youden["validation_sensitivity"] == 1.0 and youden["validation_specificity"] == 0.75
    strict = choose_threshold(positive, score, target_sensitivity=0.8)
    assert strict["threshold"] == pytest.approx(0.6)  # the highest keeping >= 0.8 (5 of 6)
    assert strict["validation_sensitivity"] == pytest.approx(5 / 6)
    assert "0.8" in strict["rule"] and "validation" in strict["rule"]
    plain = choose_threshold(positive, score, rule="argmax")  # the default: 0.5
    assert plain["threshold"] == 0.5 and plain["validation_sensitivity"] == pytest.approx(5 / 6)
    blind = choose_threshold(np.array([0, 1, 0, 1]), np.array([0.6, 0.6, 0.6, 0.6]))
    assert blind["threshold"] == 0.5  # Youden's J of 0: no better than the default


def test_temperature_scaling_recovers_an_overconfident_models_temperature():
    rng = np.random.default_rng(0)
    honest = rng.normal(0, 2, (4000, 2))
    labels = np.array([rng.choice(2, p=p) for p in softmax(honest)])
    overconfident = honest * 3.0  # the same ranking, probabilities pushed to 0 and 1
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.15)
    before = expected_calibration_error(softmax(overconfident), labels)
    after = expected_calibration_error(softmax(overconfident, t), labels)
    assert after < before / 2 and after < 0.03


def test_expected_calibration_error_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    # bins (15 equal): 0.9 and 0.8 apart, 0.7 and 0.6 apart -> per item |conf - correct|
    expected = (abs(0.9 - 1) + abs(0.8 - 0) + abs(0.7 - 1) + abs(0.6 - 1)) / 4
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_cli_breastmnist_threshold_on_validation_and_calibrated_scores(tmp_path):
    run = tmp_path / "run"
    data = DATA / "medmnist" / "breastmnist.npz"
    cli_in_process("train", "--data", data, "--out", run, "--backbone", "mobilenet_v2",
                          "--weights", MOBILENET_V2, "--image-size", "64",
                          "--calibrate", "temperature", "--target-sensitivity", "0.9",
                          "--positive", "0", "--per-class", "40")  # fmt: skip
    info = json.loads((run / "model.json").read_text())["binary"]
    assert info["positive"] == "0" and 0 < info["threshold"] < 1  # 0: malignant
    assert info["validation_sensitivity"] >= 0.9 and info["validation_images"] == 78
    assert info["temperature"] != 1.0
    assert "'0' flagged at probability" in (run / "notes.txt").read_text()
    said = cli_in_process("evaluate", run, "--data", data, "--bootstrap", "200").stdout
    said = " ".join(said.split())
    assert "ROC AUC" in said and "sensitivity" in said and "ECE" in said
    m = json.loads((run / "eval" / "breastmnist.npz" / "metrics.json").read_text())
    for key in ("roc_auc", "sensitivity", "specificity", "ece", "accuracy"):
        low, high = m["intervals"][key]
        assert low <= m[key] <= high
    assert m["roc_auc"] > 0.7 and m["threshold"] == info["threshold"]
    assert (run / "eval" / "breastmnist.npz" / "reliability.png").is_file()
    image = tmp_path / "scan.png"
    from PIL import Image

    Image.fromarray(np.load(data)["test_images"][0]).save(image)
    answer = json.loads(cli_in_process("predict", run, image, "--format", "json").stdout)[0]
    flagged = dict((t["label"], t["score"]) for t in answer["top"])["0"] >= info["threshold"]
    assert answer["decision"] == ("0" if flagged else "1")  # the threshold decides, not argmax


def test_the_two_class_options_refuse_other_runs_and_unknown_classes():
    from types import SimpleNamespace

    from tlcv.errors import TlcvError
    from tlcv.tasks.classification.calibration import binary_record

    cfg = SimpleNamespace(calibrate="temperature", target_sensitivity=None, positive=None,
                          threshold="argmax")  # fmt: skip
    with pytest.raises(TlcvError, match="two-class"):
        binary_record(cfg, ["a", "b", "c"], None, None, [])
    with pytest.raises(TlcvError, match="not a class"):
        binary_record(SimpleNamespace(**{**vars(cfg), "positive": "x"}), ["a", "b"], None, None, [])
    notes: list[str] = []
    assert binary_record(cfg, ["a", "b"], np.zeros((3, 2)), np.zeros(3), notes) is None
    assert "both classes" in notes[0]
