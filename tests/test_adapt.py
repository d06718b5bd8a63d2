"""Domain adaptation end to end on real digits and Office-31 images (small subsets)."""

import csv
import json
import random

import pytest
from safetensors.torch import load_file
from test_cli import tlcv

from conftest import DATA, MOBILENET_V2, link_subset
from tlcv.api import adapt, evaluate
from tlcv.errors import TlcvError

DIGITS = DATA / "digits"
LENET = dict(
    backbone="lenet",
    mode="full",
    augment="none",
    optimizer="sgd",
    lr=0.01,
    batch_size=64,
    num_workers=0,
    plots=False,
)


@pytest.fixture(scope="module")
def usps_mnist(tmp_path_factory):
    base = tmp_path_factory.mktemp("digits")
    return (
        link_subset(DIGITS / "usps" / "train", base / "usps", 150),
        link_subset(DIGITS / "mnist" / "train", base / "mnist", 100),
    )


def _target_accuracy(run) -> float:
    return json.loads((run.path / "metrics.json").read_text())["target"]["accuracy"]


def test_conditional_adversarial_adaptation_beats_source_only(usps_mnist, tmp_path):
    """USPS -> MNIST with LeNet from scratch: CDAN must beat the same recipe without it."""
    source, target = usps_mnist
    common = dict(LENET, epochs=6, seed=0, select="last")
    baseline = adapt(source, target, tmp_path / "so", method="source-only", **common)
    adapted = adapt(source, target, tmp_path / "cdan", method="cdan", **common)
    assert _target_accuracy(adapted) > _target_accuracy(baseline) + 0.03


def test_target_labels_are_never_read_before_the_final_evaluation(tmp_path):
    """The same target images with shuffled labels must give bit-identical training."""
    source = link_subset(DIGITS / "usps" / "train", tmp_path / "src", 12)
    images = link_subset(DIGITS / "mnist" / "train", tmp_path / "tgt", 8)
    rows = [(str(p), p.parent.name) for p in sorted(images.rglob("*.png"))]
    shuffled = [label for _, label in rows]
    random.Random(0).shuffle(shuffled)
    runs = {}
    for name, labels in (("true", [lab for _, lab in rows]), ("shuffled", shuffled)):
        manifest = tmp_path / f"{name}.csv"
        with open(manifest, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["path", "label"])
            writer.writerows((path, lab) for (path, _), lab in zip(rows, labels, strict=True))
        runs[name] = adapt(source, manifest, tmp_path / name, method="dann+mcc", epochs=2, **LENET)
    weights = {k: load_file(str(r.path / "model.safetensors")) for k, r in runs.items()}
    assert weights["true"].keys() == weights["shuffled"].keys()
    assert all((weights["true"][k] == weights["shuffled"][k]).all() for k in weights["true"])
    metrics = {k: json.loads((r.path / "metrics.json").read_text()) for k, r in runs.items()}
    assert metrics["true"]["selection"]["target_labels_used"] is False
    predictions = {k: (r.path / "target_predictions.csv").read_text() for k, r in runs.items()}
    assert predictions["true"] == predictions["shuffled"]
    assert metrics["shuffled"]["target"]["n"] == len(rows)  # labels read, at the end only


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    """Office-31 amazon -> webcam, 5 classes, MobileNetV2 at 64 px, frozen, from the CLI."""
    base = tmp_path_factory.mktemp("office")
    classes = ["back_pack", "bike", "calculator", "keyboard", "mug"]
    source = link_subset(DATA / "office31" / "amazon", base / "amazon", 20, classes)
    target = link_subset(DATA / "office31" / "webcam", base / "webcam", 10, classes)
    out = base / "run"
    done = tlcv(
        "adapt", "--source", source, "--target", target, "--method", "dann+mcc",
        "--backbone", "mobilenet_v2", "--weights", MOBILENET_V2, "--mode", "frozen",
        "--image-size", 64, "--epochs", 3, "--batch-size", 16, "--select", "entropy",
        "--oracle", "--out", out, "--seed", 1, "--json",
    )  # fmt: skip
    return out, source, target, json.loads(done.stdout)


def test_frozen_adaptation_writes_a_complete_run(frozen_run):
    out, _, _, metrics = frozen_run
    for name in ("model.safetensors", "config.yaml", "history.csv", "tsne.png",
                 "target_per_class.csv", "target_confusion.png", "notes.txt"):  # fmt: skip
        assert (out / name).is_file(), name
    assert metrics["selection"] == {
        "criterion": "entropy",
        "best_epoch": metrics["selection"]["best_epoch"],
        "epochs_run": 3,
        "target_labels_used": False,
    }
    assert metrics["oracle"]["label"].startswith("ORACLE")
    assert 0 <= metrics["target"]["accuracy"] <= metrics["oracle"]["target_accuracy"] + 1e-9
    gap = metrics["domain_gap"]
    assert -2.0 <= gap["proxy_a_distance_after"] <= 2.0
    assert len(metrics["target"]["per_class"]) == 5
    history = (out / "history.csv").read_text()
    assert "dann_loss" in history and "mcc_loss" in history and "target_entropy" in history


def test_evaluate_and_predict_work_on_an_adapted_run(frozen_run):
    out, _, target, metrics = frozen_run
    report = json.loads(tlcv("evaluate", out, "--data", target, "--json").stdout)
    assert report["accuracy"] == pytest.approx(metrics["target"]["accuracy"], abs=1e-6)
    image = next(target.rglob("*.jpg"))
    rows = json.loads(tlcv("predict", out, image, "--format", "json").stdout)
    assert rows[0]["top"][0]["label"] in {"back_pack", "bike", "calculator", "keyboard", "mug"}


def test_adabn_in_frozen_mode_changes_only_batchnorm_statistics(frozen_run, tmp_path):
    _, source, target, _ = frozen_run
    # One epoch at 64 px: the guard rightly prefers source-only here (34% vs 70% on the target
    # labels), so keep the adapted model: this test is about what AdaBN changes.
    run = adapt(
        source, target, tmp_path / "adabn", method="adabn", backbone="mobilenet_v2",
        weights=str(MOBILENET_V2), image_size=64, epochs=1, batch_size=16, plots=False,
        fallback="none",
    )  # fmt: skip
    from tlcv.backbones import create_backbone

    pretrained = create_backbone("mobilenet_v2", str(MOBILENET_V2), 64).net.state_dict()
    saved = load_file(str(run.path / "model.safetensors"))
    changed = {k for k, v in pretrained.items() if not (saved[f"backbone.{k}"] == v).all()}
    stats = ("running_mean", "running_var", "num_batches_tracked")
    assert changed and all(k.endswith(stats) for k in changed)
    assert "AdaBN" in (run.path / "notes.txt").read_text()
    assert evaluate(run, target)["n"] == 50


def test_class_sets_are_reconciled_or_refused(tmp_path):
    source = link_subset(DIGITS / "usps" / "train", tmp_path / "s", 10, ["0", "1", "2"])
    target = link_subset(DIGITS / "mnist" / "train", tmp_path / "t", 10, ["1", "2", "3"])
    run = adapt(source, target, tmp_path / "shared", epochs=1, **LENET)
    assert run.classes == ["1", "2"]
    notes = (run.path / "notes.txt").read_text()
    assert "['0']" in notes and "['3']" in notes
    other = link_subset(DIGITS / "mnist" / "train", tmp_path / "o", 5, ["7", "8"])
    with pytest.raises(TlcvError, match="share no class"):
        adapt(source, other, tmp_path / "none", epochs=1, **LENET)


def test_unlabelled_target_folder_adapts_without_a_target_score(tmp_path):
    source = link_subset(DIGITS / "usps" / "train", tmp_path / "s", 10)
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((DIGITS / "mnist" / "train" / "4").iterdir())[:30]:
        (flat / f.name).symlink_to(f)
    run = adapt(source, flat, tmp_path / "run", method="mcc", epochs=1, **LENET)
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert "target" not in metrics and "source" in metrics
    assert len((run.path / "target_predictions.csv").read_text().splitlines()) == 31


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--method", "dann+magic"], "unknown adaptation method 'magic'"),
        (["--mode", "frozen"], "learns nothing useful"),
        (["--mode", "sideways"], "unknown --mode"),
        (["--target", "/no/such/target"], "does not exist"),
    ],
)
def test_adapt_user_errors_are_one_clear_line(tmp_path, extra, needle):
    source = link_subset(DIGITS / "usps" / "train", tmp_path / "s", 3)
    options = {
        "--source": source,
        "--target": DIGITS / "mnist" / "test",
        "--backbone": "lenet",
        "--mode": "full",
        "--out": tmp_path / "r",
    }
    options.update(zip(extra[::2], extra[1::2], strict=True))
    args = ["adapt", *(x for pair in options.items() for x in pair)]
    done = tlcv(*args, check=False)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr


def test_empty_target_is_refused(tmp_path):
    source = link_subset(DIGITS / "usps" / "train", tmp_path / "s", 3)
    (tmp_path / "empty" / "0").mkdir(parents=True)
    with pytest.raises(TlcvError, match="no images"):
        adapt(source, tmp_path / "empty", tmp_path / "r", epochs=1, **LENET)


def test_kill_9_and_resume_of_an_adaptation_gives_identical_weights(tmp_path):
    """DANN with dropout in its bottleneck: a resumed run draws the same random numbers."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    from conftest import ROOT

    source = link_subset(DIGITS / "mnist" / "train", tmp_path / "src", 12)
    target = link_subset(DIGITS / "usps" / "train", tmp_path / "tgt", 12)
    options = dict(LENET, batch_size=16, epochs=4, seed=2, augment="light", method="dann")
    straight = adapt(source, target, tmp_path / "straight", **options)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items() if k != "plots"]
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "tlcv.cli", "adapt", "--source", str(source), "--target",
           str(target), "--out", str(out), "--no-plots", *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if (out / "checkpoints" / "last.ckpt").is_file():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model.json").exists()
    tlcv("adapt", "--resume", out)
    a, b = (
        load_file(str(straight.path / "model.safetensors")),
        load_file(str(out / "model.safetensors")),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
