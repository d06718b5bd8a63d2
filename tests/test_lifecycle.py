"""The run lifecycle and the task axis: a new task is one module, with no special case in the
lifecycle, the API or the CLI (here a toy task registered by the test itself)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

import tlcv
from tlcv.registry import Registry
from tlcv.tasks import TASKS, Task, task_for_data, task_of_run

NEEDS_SHARED = False  # generated data only: runs without ../shared

TOY_STRATEGIES: Registry = Registry("toy strategy")


@TOY_STRATEGIES.register("features")
def _train_toy(cfg, progress=False):
    """A whole strategy on the lifecycle: data, head, scoring; nothing about the folder."""
    import torch

    from tlcv.backbones import create_backbone
    from tlcv.engine.lifecycle import Outcome, RunLifecycle
    from tlcv.heads.model import ClassifierModel

    life = RunLifecycle(cfg.out, overwrite=cfg.overwrite)
    files = sorted(Path(cfg.data).glob("*.png"))
    backbone = create_backbone("lenet", "none", seed=cfg.seed)
    life.begin(cfg.to_dict(), {"strategy": "toy", "n_train": len(files)})
    head = torch.nn.Linear(backbone.feature_dim, 2)
    brightness = [float(np.asarray(Image.open(f)).mean()) for f in files]
    metrics = {"train": {"n": len(files), "accuracy": 1.0, "mean_brightness": np.mean(brightness)}}
    return life.finish(
        Outcome(
            ClassifierModel(backbone, head),
            ["dark", "bright"],
            {"type": "linear", "in_features": backbone.feature_dim, "num_classes": 2},
            {"strategy": "features", "task": "toy"},
            metrics,
            ["a toy task wrote this run"],
            [("broken.png", "not an image")],
        )
    )


class ToyTask(Task):
    name = "toy"
    description = "brightness of loose PNG files"
    run_tags = ("toy",)
    strategies: ClassVar[Registry] = TOY_STRATEGIES

    def claims(self, data) -> bool:
        return (Path(data) / "TOY").exists()


@pytest.fixture
def toy_task():
    TASKS.add("toy", ToyTask)
    yield ToyTask
    TASKS.remove("toy")


@pytest.fixture
def toy_data(tmp_path) -> Path:
    root = tmp_path / "toy"
    root.mkdir()
    for i in range(4):
        Image.fromarray(np.full((28, 28), 60 * i, np.uint8)).save(root / f"{i}.png")
    (root / "TOY").touch()
    return root


def test_a_new_task_is_one_registration_through_the_api(toy_task, toy_data, tmp_path):
    run = tlcv.train(toy_data, tmp_path / "run", task="toy")
    assert run.metrics["train"]["n"] == 4 and run.notes == ["a toy task wrote this run"]
    for name in ("config.yaml", "model.json", "classes.json", "model.safetensors",
                 "metrics.json", "notes.txt", "skipped.csv"):  # fmt: skip
        assert (run.path / name).is_file(), name
    assert "broken.png" in (run.path / "skipped.csv").read_text()
    assert json.loads((run.path / "metrics.json").read_text())["train"]["n"] == 4
    assert isinstance(task_of_run(tlcv.load_run(run.path)), ToyTask)
    # the task claims its data when --task is not given
    assert isinstance(task_for_data(toy_data), ToyTask)
    again = tlcv.train(toy_data, tmp_path / "auto")
    assert again.info["task"] == "toy"


def test_the_lifecycle_refuses_a_finished_folder_and_keeps_it(toy_task, toy_data, tmp_path):
    from tlcv.errors import TlcvError

    run = tlcv.train(toy_data, tmp_path / "run", task="toy")
    before = (run.path / "model.safetensors").read_bytes()
    with pytest.raises(TlcvError, match="already holds a run"):
        tlcv.train(toy_data, tmp_path / "run", task="toy")
    assert (run.path / "model.safetensors").read_bytes() == before


def test_unknown_tasks_and_strategies_list_the_registered_ones(toy_data, tmp_path):
    from tlcv.errors import TlcvError

    listed = "(?s)unknown task 'segmentatoin'.*classification, clip-classification"
    with pytest.raises(TlcvError, match=listed):
        tlcv.train(toy_data, tmp_path / "x", task="segmentatoin")
    with pytest.raises(TlcvError, match="(?s)unknown clip strategy 'scratch'.*features, finetune"):
        tlcv.train(toy_data, tmp_path / "x", task="clip-classification", strategy="scratch")
