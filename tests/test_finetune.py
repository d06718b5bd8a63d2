"""The training engine: fine-tuning, scratch, freeze schedules, resume, DDP, bad input."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import (
    DATA,
    MOBILENET_V2,
    ROOT,
    conv_output_dtypes,
    kill_after_first_checkpoint,
    link_subset,
    tlcv_torchrun,
)
from tlcv.backbones import create_backbone
from tlcv.engine import FreezeSchedule, Recipe, TransferModule
from tlcv.engine.trainer import cpu_has_bf16
from tlcv.errors import TlcvError
from tlcv.heads.model import ClassifierModel


def tlcv_cmd(*args):
    return [sys.executable, "-m", "tlcv.cli", *map(str, args)]


def run_tlcv(*args, check=True, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env_extra or {})}
    done = subprocess.run(tlcv_cmd(*args), capture_output=True, text=True, env=env, timeout=900)
    if check:
        assert done.returncode == 0, f"{done.stdout[-1500:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def office4(tmp_path_factory):
    root = tmp_path_factory.mktemp("office4")
    return link_subset(
        DATA / "office31" / "amazon", root, 16, ["back_pack", "bike", "calculator", "keyboard"]
    )


def _module(ratio=0.1, decay=1.0):
    net = create_backbone("mobilenet_v3_small", weights="none", image_size=32)
    model = ClassifierModel(net, torch.nn.Linear(net.feature_dim, 3))
    return TransferModule(model, 3, Recipe(lr=1e-2, backbone_lr_ratio=ratio, layer_decay=decay))


def test_backbone_lr_is_the_set_fraction_of_the_heads():
    groups = _module(ratio=0.1).param_groups()
    head = [g["lr"] for g in groups if g["name"].startswith("head")]
    body = [g["lr"] for g in groups if not g["name"].startswith("head")]
    assert head == [1e-2, 1e-2] and len(body) > 4
    assert all(lr == pytest.approx(1e-3) for lr in body)
    decayed = _module(ratio=0.1, decay=0.5).param_groups()
    lrs = [g["lr"] for g in decayed if not g["name"].endswith("no_decay")][:-1]
    assert lrs == sorted(lrs) and lrs[-1] == pytest.approx(1e-3) and lrs[0] < lrs[-1] / 4
    assert all(g["weight_decay"] == 0 for g in decayed if g["name"].endswith("no_decay"))


def test_freeze_schedule_counts_groups():
    fs = FreezeSchedule(freeze_epochs=2, mode="gradual")
    assert [fs.trainable_groups(e, 4) for e in range(7)] == [0, 0, 1, 2, 3, 4, 4]
    assert [FreezeSchedule(1, "all").trainable_groups(e, 4) for e in range(3)] == [0, 4, 4]


def test_finetune_beats_chance_and_frozen_groups_do_not_change(office4, tmp_path, monkeypatch):
    import lightning as L

    snapshots = {}

    class Snap(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            snapshots[trainer.current_epoch] = {
                k: v.detach().clone() for k, v in module.model.state_dict().items()
            }

    import tlcv.engine.lifecycle as lifecycle

    original = lifecycle.build_trainer

    def with_snap(*a, callbacks, **k):
        return original(*a, callbacks=[*callbacks, Snap()], **k)

    monkeypatch.setattr(lifecycle, "build_trainer", with_snap)  # every strategy's trainer
    import tlcv

    initial = create_backbone("mobilenet_v2", weights=str(MOBILENET_V2)).net.state_dict()
    run = tlcv.train(
        office4,
        tmp_path / "ft",
        strategy="finetune",
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=64,
        epochs=3,
        freeze_epochs=1,
        unfreeze="gradual",
        lr=3e-3,
        batch_size=16,
        patience=None,
        test_fraction=0.25,
        val_fraction=0.15,
    )
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.6  # chance 0.25
    groups = run.load_model().backbone.layer_groups()
    e0, e1 = snapshots[0], snapshots[1]
    for _name, params in groups:  # epoch 0: head only; BN statistics untouched too
        for p in params:
            assert torch.equal(e0[f"backbone.net.{p}"], initial[p]), p
    bn_stat = next(k for k in initial if k.endswith("running_mean"))
    assert torch.equal(e0[f"backbone.net.{bn_stat}"], initial[bn_stat])
    assert not torch.equal(e0["head.weight"], e1["head.weight"])
    top, lower = groups[-1][1], [p for _, ps in groups[:-1] for p in ps]
    assert any(not torch.equal(e1[f"backbone.net.{p}"], e0[f"backbone.net.{p}"]) for p in top)
    assert all(torch.equal(e1[f"backbone.net.{p}"], e0[f"backbone.net.{p}"]) for p in lower)
    for name in (
        "history.csv",
        "checkpoints/best.safetensors",
        "checkpoints/last.safetensors",
        "checkpoints/last.ckpt",
        "model.safetensors",
        "config.yaml",
    ):
        assert (run.path / name).is_file(), name
    # evaluate and predict work on a fine-tuned run as on any run
    m = tlcv.evaluate(run, office4)
    assert m["n"] == 64 and m["accuracy"] > 0.6


def test_scratch_starts_from_random_weights(office4, tmp_path):
    import tlcv

    run = tlcv.train(
        office4,
        tmp_path / "s",
        strategy="scratch",
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=32,
        epochs=1,
        batch_size=500,
        patience=None,
    )
    assert run.info["weights_source"] == "random"
    resolved = run.config["resolved"]
    pretrained = create_backbone("mobilenet_v2", weights=str(MOBILENET_V2))
    assert resolved["weights_id"] != pretrained.weights_id
    assert run.config["backbone_lr_ratio"] == 1.0
    assert "scratch" in (run.path / "notes.txt").read_text()


def _train_args(data, out):
    return [
        "train",
        "--data",
        data,
        "--out",
        out,
        "--strategy",
        "finetune",
        "--backbone",
        "mobilenet_v3_small",
        "--weights",
        "none",
        "--image-size",
        48,
        "--epochs",
        4,
        "--batch-size",
        8,
        "--augment",
        "light",
        "--num-workers",
        0,
        "--patience",
        0,
        "--seed",
        5,
    ]


def test_kill_9_and_resume_gives_the_same_final_metrics(office4, tmp_path):
    run_tlcv(*_train_args(office4, tmp_path / "straight"))
    out = tmp_path / "killed"
    kill_after_first_checkpoint(_train_args(office4, out), out)
    # killed midway: the resume checkpoint is written at every epoch end, not only the last
    assert len((out / "history.csv").read_text().strip().splitlines()) - 1 < 4
    changed = run_tlcv("train", "--resume", out, "--lr", 0.5, check=False)
    assert changed.returncode == 2 and "lr" in changed.stderr
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    run_tlcv("train", "--resume", copy)  # resumes where it is pointed ...
    assert not (out / "model.json").exists()  # ... never into the folder it was copied from
    run_tlcv("train", "--resume", out)
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    wa = load_file(str(tmp_path / "straight" / "model.safetensors"))
    for resumed in (out, copy):
        b = json.loads((resumed / "metrics.json").read_text())
        for split in ("train", "val", "test"):
            assert a[split]["accuracy"] == b[split]["accuracy"], split
        wb = load_file(str(resumed / "model.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_torchrun_two_processes_train(office4, tmp_path):
    args = list(map(str, _train_args(office4, tmp_path / "ddp")))
    args[args.index("--epochs") + 1] = "2"
    args += ["--freeze-epochs", "1"]  # frozen then unfrozen under DDP
    tlcv_torchrun(args, 29531)
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["selection"]["epochs_run"] == 2 and metrics["train"]["n"] > 0
    # the backbone did learn after unfreezing: it differs from its (seeded) initial weights
    start = create_backbone("mobilenet_v3_small", weights="none", image_size=48, seed=5)
    final = load_file(str(tmp_path / "ddp" / "checkpoints" / "last.safetensors"))
    changed = [
        k
        for k, v in start.net.state_dict().items()
        if v.is_floating_point() and not torch.equal(final[f"backbone.{k}"], v)
    ]
    assert len(changed) > 10


def test_nan_loss_stops_with_a_clear_message():
    module = _module()
    with torch.no_grad():
        module.model.head.weight.fill_(float("nan"))
    x = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(TlcvError, match="loss became nan"):
        module.training_step((x, torch.tensor([0, 1]), []), 0)


def test_checkpoint_write_failure_keeps_the_previous_one(tmp_path, monkeypatch):
    from tlcv.engine import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def full_disk(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(TlcvError, match="No space left on device .* MB free there"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)  # one line, not OSError
    assert io.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_resume_refuses_changed_config_and_unknown_runs(tmp_path):
    import tlcv.api as api

    with pytest.raises(TlcvError, match="not a tlcv run"):
        api.resume(tmp_path)
    (tmp_path / "config.yaml").write_text("data: x\nout: y\nstrategy: finetune\nepochs: 3\n")
    with pytest.raises(TlcvError, match="epochs: saved 3, now 5"):
        api.resume(tmp_path, epochs=5)


def test_batch_larger_than_dataset_and_bad_flags(office4, tmp_path):
    bad = run_tlcv(
        "train",
        "--data",
        office4,
        "--out",
        tmp_path / "x",
        "--strategy",
        "finetune",
        "--augment",
        "wild",
        check=False,
    )
    assert bad.returncode == 2 and "--augment" in bad.stderr and "Traceback" not in bad.stderr


def test_lr_finder_picks_the_learning_rate(office4, tmp_path):
    """--lr-find runs Lightning's range test on the run's trainer and keeps its plot."""
    import tlcv

    run = tlcv.train(
        office4,
        tmp_path / "lr",
        strategy="finetune",
        backbone="mobilenet_v3_small",
        weights="none",
        image_size=32,
        epochs=1,
        batch_size=8,
        lr_find=True,
    )
    assert (run.path / "lr_find.png").is_file()
    assert any("learning-rate finder" in n for n in run.notes)


def test_precision_flag_resolves_per_device(monkeypatch):
    from tlcv.engine import trainer

    assert trainer.resolve_precision("auto", cuda=False) == "32-true"
    assert trainer.resolve_precision("32", cuda=False) == "32-true"
    monkeypatch.setattr(trainer, "cpu_has_bf16", lambda: True)
    assert trainer.resolve_precision("bf16", cuda=False) == "bf16-mixed"
    monkeypatch.setattr(trainer, "cpu_has_bf16", lambda: False)
    with pytest.raises(TlcvError, match="no native bfloat16.*--precision 32"):
        trainer.resolve_precision("bf16", cuda=False)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_training_runs_in_bfloat16_and_learns(office4, tmp_path, monkeypatch):
    """--precision bf16 really autocasts (convolutions see bfloat16) and still learns."""
    import tlcv

    seen = conv_output_dtypes(monkeypatch)
    run = tlcv.train(office4, tmp_path / "bf16", strategy="finetune", backbone="mobilenet_v2",
                     weights=str(MOBILENET_V2), image_size=64, epochs=3, batch_size=16,
                     lr=3e-3, patience=None, precision="bf16")  # fmt: skip
    assert torch.bfloat16 in seen
    assert run.config["precision"] == "bf16"
    assert run.metrics["test"]["accuracy"] > 0.5  # 4 classes: chance is 0.25
