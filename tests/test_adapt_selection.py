"""Choosing adaptation models with validators (issue 16): the experiment end to end on a small
Office-31 grid, and its label discipline (shuffled target labels -> the same choices)."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import DATA, MOBILENET_V2, link_subset
from tlcv.adaptation import context as pipeline  # where the domains are read
from tlcv.adaptation.validators import VALIDATORS, metric_name
from tlcv.experiments import experiment

CLASSES = ["back_pack", "bike", "calculator", "keyboard"]
GRID = dict(
    methods="source-only,dann", trade_offs="0.3,1", seeds=1, backbone="mobilenet_v2",
    weights=str(MOBILENET_V2), image_size=64, epochs=3, batch_size=16, num_workers=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    base = tmp_path_factory.mktemp("domains")
    link_subset(DATA / "office31" / "amazon", base / "amazon", 12, CLASSES)
    link_subset(DATA / "office31" / "webcam", base / "webcam", 8, CLASSES)
    return base


def _choices(summary: dict) -> list[tuple]:
    picks = dict(summary["tables"])["what each validator picked"]
    return [(p["validator"], p["method"], p["trade_off"], p["epoch"]) for p in picks]


@pytest.fixture(scope="module")
def selection(office, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp") / "true"
    return out, experiment("adaptation-selection", office, out, pairs="amazon->webcam", **GRID)


def test_every_validator_picks_and_is_scored_against_the_oracle(selection):
    out, summary = selection
    rows = {r["validator"]: r for r in summary["table"]}
    assert set(VALIDATORS.names()) <= set(rows)
    oracle = rows["ORACLE (target labels)"]["target_accuracy"]
    assert all(rows[v]["target_accuracy"] <= oracle + 1e-4 for v in VALIDATORS.names())
    assert len(_choices(summary)) == len(VALIDATORS.names())  # one pair, one seed
    assert (out / "adaptation_selection.png").stat().st_size > 1000
    history = (out / "runs" / "amazon-webcam-dann-t0.3-seed0" / "history.csv").read_text()
    assert all(metric_name(v) in history.splitlines()[0] for v in VALIDATORS.names())


def test_shuffled_target_labels_change_no_choice(selection, office, tmp_path, monkeypatch):
    read = pipeline.read_domains

    def shuffled(*args, **kwargs):
        domains = read(*args, **kwargs)
        labels = list(domains.target_labels)
        random.Random(0).shuffle(labels)
        return replace(domains, target_labels=labels)

    monkeypatch.setattr(pipeline, "read_domains", shuffled)
    again = experiment(
        "adaptation-selection", office, tmp_path / "x", pairs="amazon->webcam", **GRID
    )
    assert _choices(again) == _choices(selection[1])
    oracle = [r for r in again["table"] if r["validator"].startswith("ORACLE")]
    true_oracle = [r for r in selection[1]["table"] if r["validator"].startswith("ORACLE")]
    assert oracle[0]["target_accuracy"] != true_oracle[0]["target_accuracy"]  # labels did move


def test_adapt_keeps_the_epoch_its_validator_scores_best(office, tmp_path):
    import csv

    from tlcv import adapt

    run = adapt(
        office / "amazon", office / "webcam", tmp_path / "run", method="dann", select="im",
        **{k: v for k, v in GRID.items() if k not in ("methods", "trade_offs", "seeds")},
    )  # fmt: skip
    rows = list(csv.DictReader(open(run.path / "history.csv")))
    best = max(rows, key=lambda r: float(r["sel_im"]))
    assert run.metrics["selection"]["best_epoch"] == int(best["epoch"])
    from tlcv.api import report

    _, md = report([run.path], tmp_path / "report.html")
    assert "validators per epoch" in Path(md).read_text()


def test_trade_off_grid_keeps_the_value_the_validator_scores_best(office, tmp_path):
    from tlcv import adapt
    from tlcv.errors import TlcvError

    options = {k: v for k, v in GRID.items() if k not in ("methods", "trade_offs", "seeds")}
    run = adapt(
        office / "amazon", office / "webcam", tmp_path / "run", method="dann", select="im",
        trade_off_grid="0.1,1", **options,
    )  # fmt: skip
    search = run.metrics["trade_off_search"]
    assert set(search["scores"]) == {"0.1", "1"} and search["target_labels_used"] is False
    assert search["chosen"] == float(max(search["scores"], key=search["scores"].get))
    assert run.config["trade_off"] == search["chosen"]
    assert (tmp_path / "run" / "trade-off-search" / "t=0.1" / "model.json").is_file()
    assert "chosen by im" in (run.path / "notes.txt").read_text()
    with pytest.raises(TlcvError, match="trade-off-grid"):
        adapt(office / "amazon", office / "webcam", tmp_path / "bad", trade_off_grid="x")
