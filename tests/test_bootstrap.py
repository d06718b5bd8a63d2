"""Confidence intervals of evaluate's scores (evaluation/bootstrap.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from conftest import cli_in_process
from tlcv.evaluation.bootstrap import (
    accuracy,
    balanced_accuracy,
    classification_intervals,
    interval,
    macro_f1,
)


def _by_hand(correct: np.ndarray, resamples: int, seed: int = 1) -> tuple[float, float]:
    """The percentile bootstrap of a mean, written out: resample, score, take percentiles."""
    rng = np.random.default_rng(seed)
    means = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(resamples)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def test_the_interval_matches_a_hand_computed_bootstrap():
    correct = np.array([1] * 150 + [0] * 50)
    y_true = np.zeros(200, int)
    y_pred = 1 - correct  # right where correct == 1
    low, high = interval((y_true, y_pred), accuracy, resamples=4000)
    hand_low, hand_high = _by_hand(correct.astype(float), resamples=4000)
    assert low == pytest.approx(hand_low, abs=0.012) and high == pytest.approx(hand_high, abs=0.012)
    assert low < 0.75 < high and high - low == pytest.approx(2 * 1.96 * np.sqrt(0.75 * 0.25 / 200),
                                                             abs=0.015)  # fmt: skip


def test_the_interval_narrows_as_items_grow():
    rng = np.random.default_rng(0)
    widths = []
    for n in (40, 400, 4000):
        y_true = rng.integers(0, 3, n)
        y_pred = np.where(rng.random(n) < 0.8, y_true, (y_true + 1) % 3)
        found = classification_intervals(y_true, y_pred, 3, resamples=500)
        widths.append({k: v[1] - v[0] for k, v in found.items()})
    for key in widths[0]:
        assert widths[0][key] > widths[1][key] > widths[2][key], key


def test_the_resampled_scores_are_evaluates_scores():
    """Recomputed on every resample, so they must equal scikit-learn's on the data itself."""
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 6, 300)
    y_true[y_true == 2] = 0  # class 2 absent from the truth: left out of both averages
    assert balanced_accuracy(6)(y_true, y_pred) == pytest.approx(
        balanced_accuracy_score(y_true, y_pred))  # fmt: skip
    present = sorted(set(y_true.tolist()))
    assert macro_f1(6)(y_true, y_pred) == pytest.approx(
        f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))  # fmt: skip


def test_off_or_too_few_items_gives_no_interval():
    y = np.array([0, 1, 1])
    assert interval((y, y), accuracy, resamples=0) is None
    assert interval((y[:1], y[:1]), accuracy, resamples=100) is None


def test_evaluate_prints_and_saves_the_intervals(office_run, tmp_path):
    data = office_run.config["data"]
    shown = cli_in_process("evaluate", str(office_run.path), "--data", data, "--out",
                           str(tmp_path / "eval"), "--bootstrap", "200")  # fmt: skip
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    low, high = saved["intervals"]["accuracy"]
    assert low <= saved["accuracy"] <= high and saved["bootstrap"]["resamples"] == 200
    from tlcv.evaluation.rounding import rounded

    bounds = f"[{rounded(low, [low, high])}, {rounded(high, [low, high])}]"  # as printed
    assert bounds in shown.stdout and "bootstrap interval" in shown.stdout
    off = cli_in_process("evaluate", str(office_run.path), "--data", data, "--out",
                         str(tmp_path / "off"), "--bootstrap", "0")  # fmt: skip
    assert "intervals" not in json.loads((tmp_path / "off" / "metrics.json").read_text())
    assert "bootstrap interval" not in off.stdout


def test_numbers_a_person_reads_are_rounded_to_what_they_support():
    from tlcv.evaluation.rounding import rounded, with_spread
    from tlcv.reporting import _md_table

    assert rounded(0.8720305745633282) == "0.872"  # three significant digits
    assert rounded(0.0456789) == "0.0457" and rounded(12.3456) == "12.3"
    assert rounded(1234.5) == "1234"
    assert rounded(0.8720305745633282, [0.85, 0.89]) == "0.872"  # a 0.04-wide interval
    assert rounded(0.8720305745633282, [0.6, 0.95]) == "0.87"  # a 0.35-wide one: 2 decimals
    assert rounded(None) == "-" and rounded(7) == "7"
    assert with_spread([{"mean": 0.81234, "std": 0.0131}])[0]["mean"] == "0.812 ± 0.013"
    table = _md_table([{"class": "stop", "ap": 0.8720305745633282}])  # the report's AP table
    assert "0.872 |" in table and "0.87203" not in table
