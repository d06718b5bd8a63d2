"""End to end through the ``tlcv`` command, as a user runs it, on real images."""

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from badfiles import make_bad_files, make_odd_but_valid
from conftest import DATA, MOBILENET_V2, ROOT, link_subset
from tlcv import api as tlcv_api


def tlcv(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "tlcv.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, f"{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """Default backbone (embedded Lite0 weights, no flags) on MNIST: 30 shots per digit."""
    out = tmp_path_factory.mktemp("runs") / "mnist"
    tlcv(
        "train",
        "--data",
        DATA / "digits" / "mnist",
        "--out",
        out,
        "--per-class",
        30,
        "--image-size",
        32,
        "--seed",
        1,
    )
    return out


def test_default_train_writes_a_complete_run(digits_run):
    for name in (
        "config.yaml",
        "model.json",
        "classes.json",
        "model.safetensors",
        "metrics.json",
        "metrics.csv",
        "skipped.csv",
        "notes.txt",
    ):
        assert (digits_run / name).is_file(), name
    info = json.loads((digits_run / "model.json").read_text())
    assert info["backbone"] == "efficientnet_lite0" and info["preprocessing"]["input_size"] == 32
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert metrics["train"]["n"] == 300 and metrics["test"]["n"] == 1000
    assert metrics["test"]["accuracy"] > 0.5  # chance is 0.1
    assert metrics["selection"]["chosen_by"].startswith("stratified CV")


def test_evaluate_json_and_confusion_matrix(digits_run, tmp_path):
    done = tlcv(
        "evaluate",
        digits_run,
        "--data",
        DATA / "digits" / "mnist" / "test",
        "--json",
        "--out",
        tmp_path / "ev",
    )
    m = json.loads(done.stdout)
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "n", "skipped"):
        assert key in m
    assert m["n"] == 1000 and m["skipped"] == 0 and m["accuracy"] > 0.5
    assert (tmp_path / "ev" / "confusion.png").stat().st_size > 5000
    rows = list(csv.DictReader((tmp_path / "ev" / "per_class.csv").open()))
    assert len(rows) == 10 and sum(int(r["n"]) for r in rows) == 1000
    # the run reloads to the same test accuracy it reported at training time
    trained = json.loads((digits_run / "metrics.json").read_text())["test"]["accuracy"]
    assert m["accuracy"] == pytest.approx(trained, abs=1e-9)


def test_predict_csv_and_json(digits_run):
    imgs = sorted((DATA / "digits" / "mnist" / "test" / "7").iterdir())[:3]
    text = tlcv("predict", digits_run, *imgs, "--top-k", 2).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6 and rows[0]["rank"] == "1"
    out = json.loads(tlcv("predict", digits_run, imgs[0], "--format", "json").stdout)
    assert len(out[0]["top"]) == 5
    assert sum(t["score"] for t in out[0]["top"]) <= 1.0 + 1e-6


def test_office_mobilenet_from_shared_weights_and_classifiers(tmp_path):
    data = link_subset(
        DATA / "office31" / "amazon",
        tmp_path / "a",
        15,
        ["back_pack", "bike", "calculator", "headphones", "keyboard", "mug"],
    )
    common = ["--backbone", "mobilenet_v2", "--weights", MOBILENET_V2, "--image-size", 96]
    tlcv("train", "--data", data, "--out", tmp_path / "logreg", *common)  # the CLI path once
    for clf in ("svm", "knn", "mlp"):  # the same features, cached: the other heads in-process
        tlcv_api.train(data, tmp_path / clf, backbone="mobilenet_v2", weights=str(MOBILENET_V2),
                       image_size=96, classifier=clf)  # fmt: skip
    for clf in ("logreg", "svm", "knn", "mlp"):
        m = json.loads((tmp_path / clf / "metrics.json").read_text())
        assert m["test"]["accuracy"] >= 0.6, (clf, m["test"])  # chance is 1/6


def test_bad_files_are_skipped_listed_or_fatal_with_strict(tmp_path):
    data = link_subset(DATA / "cifar10" / "train", tmp_path / "d", 8, ["cat", "dog", "ship"])
    good = sorted((data / "cat").iterdir())[0].resolve()
    bad = make_bad_files(data / "cat", good)
    make_odd_but_valid(data / "dog", good)
    (data / "empty").mkdir()
    out = tmp_path / "run"
    done = tlcv("train", "--data", data, "--out", out, "--image-size", 32)
    skipped = {r["path"] for r in csv.DictReader((out / "skipped.csv").open())}
    assert skipped == {str(p) for p in bad.values()}
    assert "empty" in (out / "notes.txt").read_text() and "empty" in done.stderr
    strict = tlcv(
        "train",
        "--data",
        data,
        "--out",
        tmp_path / "strict",
        "--image-size",
        32,
        "--strict",
        check=False,
    )
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert "empty" in strict.stderr


def test_evaluate_reports_classes_the_model_never_saw(digits_run, tmp_path):
    data = tmp_path / "mixed"
    link_subset(DATA / "digits" / "mnist" / "test", data, 5, ["1", "2"])
    link_subset(DATA / "cifar10" / "test", data, 5, ["cat"])
    m = json.loads(tlcv("evaluate", digits_run, "--data", data, "--json").stdout)
    assert m["n"] == 10 and m["unknown_classes"] == {"cat": 5}


def test_config_file_keys_match_flags(tmp_path):
    data = link_subset(DATA / "cifar10" / "train", tmp_path / "d", 6, ["cat", "ship"])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data: {data}\nbackbone: mobilenet_v3_small\nweights: none\nimage-size: 32\nseed: 3\n"
    )
    out = tmp_path / "run"
    tlcv("train", "--config", cfg, "--out", out, "--seed", 4)
    import yaml

    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["backbone"] == "mobilenet_v3_small" and resolved["image_size"] == 32
    assert resolved["seed"] == 4  # the command line wins over the file
    cfg.write_text("colour: blue\n")
    bad = tlcv("train", "--config", cfg, "--out", out, check=False)
    assert bad.returncode == 2 and "colour" in bad.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--data", "/no/such/dir", "--out", "x"], "does not exist"),
        (["evaluate", "/no/such/run", "--data", "."], "not a finished tlcv run"),
        (["train", "--data", ".", "--out", "x", "--backbone", "resnet9000"], "unknown backbone"),
        (["predict", "/no/such/run", "x.jpg"], "not a finished tlcv run"),
    ],
)
def test_user_errors_have_no_traceback(args, needle):
    done = tlcv(*args, check=False)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr


def test_models_json_lists_local_weights():
    rows = {r["name"]: r for r in json.loads(tlcv("models", "--json").stdout)}
    assert rows["efficientnet_lite0"]["weights_local"] is True
    assert rows["vgg16"]["feature_dim"] == 4096 and rows["resnet50"]["params"] > 20e6


def test_python_api_mirrors_cli(tmp_path):
    import tlcv as api

    data = link_subset(DATA / "cifar10" / "train", tmp_path / "d", 10, ["airplane", "frog"])
    run = api.train(data, tmp_path / "run", image_size=32, classifier="logreg")
    assert run.classes == ["airplane", "frog"]
    m = api.evaluate(run, data)
    assert m["n"] == 20 and m["accuracy"] > 0.7
    preds = api.predict(run, [Path(data) / "frog"], top_k=1)
    assert len(preds) == 10 and all(p["top"][0]["label"] in run.classes for p in preds)


def test_error_messages_with_bracketed_paths_print_literally(tmp_path):
    # "[/path]" in a message once crashed the printer as a rich markup closing tag
    bad = tmp_path / "x.pth"
    bad.write_bytes(b"not a checkpoint")
    done = tlcv(
        "train",
        "--data",
        DATA / "cifar10" / "test",
        "--out",
        tmp_path / "r",
        "--backbone",
        "mobilenet_v2",
        "--weights",
        bad,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot read weights" in done.stderr
