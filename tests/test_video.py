"""Clips: decoding, sampling, temporal heads, training / evaluate / predict, bad videos."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from videofiles import broken_videos, ramp_video, write_video

from conftest import DATA, MOBILENET_V2, ROOT, cli_in_process
from tlcv.config import TrainConfig
from tlcv.engine.sequences import FeatureSequences
from tlcv.errors import BadImageError
from tlcv.heads import TemporalHead
from tlcv.video import read_frames, sample_indices

TRACKS = DATA / "gtsrb_tracks"
CLASSES = [
    "01",
    "02",
    "12",
    "13",
    "14",
    "38",
]  # speed 30, speed 50, priority, yield, stop, keep right


def link_tracks(dst: Path, per_class: dict[str, int]) -> Path:
    for split, n in per_class.items():
        for c in CLASSES:
            (dst / split / c).mkdir(parents=True, exist_ok=True)
            for f in sorted((TRACKS / split / c).iterdir())[:n]:
                (dst / split / c / f.name).symlink_to(f)
    return dst


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    return link_tracks(tmp_path_factory.mktemp("tracks"), {"train": 8, "test": 3})


def test_decoding_gives_every_frame_in_order(tmp_path):
    frames = read_frames(str(ramp_video(tmp_path / "ramp.mp4", n=12)))
    levels = [np.asarray(f).mean() for f in frames]
    assert len(frames) == 12 and all(b > a for a, b in zip(levels, levels[1:], strict=False))
    real = read_frames(str(sorted((TRACKS / "train" / "14").iterdir())[0]))
    assert len(real) == 30 and real[0].size == (32, 32)


def test_frame_folders_sort_naturally_and_allow_mixed_sizes(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    for i in (1, 2, 10):
        Image.new("RGB", (20 + i, 30), (i * 20, 0, 0)).save(clip / f"frame{i}.png")
    frames = read_frames(str(clip))
    assert [f.getpixel((0, 0))[0] for f in frames] == [20, 40, 200]


@pytest.mark.parametrize(
    "kind,needle",
    [
        ("zero", "0 bytes"),
        ("garbage", "corrupt"),
        ("truncated", "corrupt"),
        ("audio", "no video stream"),
        ("no_frames", "zero frames"),
    ],
)
def test_broken_videos_raise_named_errors(tmp_path, kind, needle):
    real = sorted((TRACKS / "train" / "14").iterdir())[0]
    path = broken_videos(tmp_path, real)[kind]
    with pytest.raises(BadImageError) as info:
        read_frames(str(path))
    assert needle in info.value.message and info.value.path == str(path)


def test_sampling():
    assert sample_indices(30, 5).tolist() == [0, 7, 14, 22, 29]
    assert sample_indices(3, 8).tolist() == [0, 1, 2]  # short clip: all frames, not padded
    assert sample_indices(30, 4, "stride", stride=3).tolist() == [0, 3, 6, 9]
    assert sample_indices(30, 5, prefix=10).max() <= 9
    w = sample_indices(30, 6, "random", rng=np.random.default_rng(1))
    assert len(w) == 6 and np.all(np.diff(w) == 1)


def test_random_windows_move_between_epochs_and_repeat_within_one():
    clip = np.arange(30, dtype=np.float32)[:, None]
    data = FeatureSequences([clip], [0], frames=8, sampling="random", stride=1, seed=0)
    starts = {float(data[(0, epoch)][0][0, 0]) for epoch in range(6)}
    assert len(starts) > 1  # a different window each epoch...
    assert torch.equal(data[(0, 3)][0], data[(0, 3)][0])  # ...and the same one on a resume
    assert TrainConfig(data="d", out="o").sampling == "random"


def test_packed_variable_lengths_equal_unpadded_runs():
    torch.manual_seed(0)
    for kind in ("lstm", "gru", "bilstm", "bigru", "mean", "frame"):
        head = TemporalHead(kind, 8, 3, hidden=5).eval()
        seqs = [torch.randn(n, 8) for n in (7, 3, 5)]
        padded = torch.zeros(3, 7, 8)
        for i, s in enumerate(seqs):
            padded[i, : len(s)] = s
        together = head(padded, torch.tensor([7, 3, 5]))
        alone = torch.cat([head(s[None], torch.tensor([len(s)])) for s in seqs])
        assert torch.allclose(together, alone, atol=1e-6), kind


def test_bidirectional_heads_read_the_clip_backwards_too():
    torch.manual_seed(0)
    head = TemporalHead("bilstm", 4, 2, hidden=3).eval()
    x, lengths = torch.randn(1, 6, 4), torch.tensor([6])
    rnn = head.rnn
    reverse = torch.nn.LSTM(4, 3, batch_first=True)
    reverse.load_state_dict(
        {
            k.replace("_reverse", ""): v
            for k, v in rnn.state_dict().items()
            if k.endswith("_reverse")
        }
    )
    _, (h_back, _) = reverse(x.flip(1))
    rep = {}
    head.classifier.register_forward_hook(lambda m, inp, out: rep.setdefault("x", inp[0]))
    head.dropout.eval()
    head(x, lengths)
    assert rep["x"].shape[1] == 6
    assert torch.allclose(rep["x"][0, 3:], h_back[0, 0], atol=1e-6)  # backward half
    # and the backward half depends on the first frame even when the last one is fixed
    x2 = x.clone()
    x2[0, 0] += 1.0
    rep.clear()
    head(x2, lengths)
    assert not torch.allclose(rep["x"][0, 3:], h_back[0, 0])


@pytest.mark.parametrize("kind", ["lstm", "gru", "bilstm", "bigru", "mean", "frame"])
def test_each_head_trains_above_chance(tracks, tmp_path, kind):
    import tlcv

    run = tlcv.train(
        tracks,
        tmp_path / kind,
        temporal=kind,
        frames=8,
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=32,
        epochs=12,
        lr=3e-3,
        batch_size=16,
        patience=None,
        hidden=64,
        val_fraction=0.2,
    )
    m = json.loads((run.path / "metrics.json").read_text())
    assert m["test"]["n"] == 18 and m["test"]["accuracy"] >= 0.45, m["test"]  # chance 1/6


def tlcv_cli(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "tlcv.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_cli_train_evaluate_predict_on_video_with_bad_clips(tracks, tmp_path):
    data = link_tracks(tmp_path / "d", {"train": 6, "test": 2})
    real = sorted((TRACKS / "train" / "14").iterdir())[0]
    bad = broken_videos(data / "train" / "14", real)
    short = write_video(
        data / "train" / "13" / "short.mp4", [np.asarray(f) for f in read_frames(str(real))[:3]]
    )
    out = tmp_path / "run"
    tlcv_cli(
        "train",
        "--data",
        data,
        "--out",
        out,
        "--temporal",
        "gru",
        "--frames",
        8,
        "--backbone",
        "mobilenet_v2",
        "--weights",
        MOBILENET_V2,
        "--image-size",
        32,
        "--epochs",
        3,
        "--patience",
        0,
    )
    assert "sampling: random" in (out / "config.yaml").read_text()  # the default for clips
    skipped = {r["path"] for r in csv.DictReader((out / "skipped.csv").open())}
    assert skipped == {str(p) for p in bad.values()}
    assert "fewer than --frames" in (out / "notes.txt").read_text()
    assert str(short) not in skipped
    # the rest in-process: the training above was the real command's start
    m = json.loads(cli_in_process("evaluate", out, "--data", data / "test", "--json").stdout)
    assert m["n"] == 12 and m["skipped"] == 0 and 0 <= m["accuracy"] <= 1
    m5 = json.loads(
        cli_in_process("evaluate", out, "--data", data / "test", "--json", "--prefix", 5).stdout
    )
    assert m5["prefix"] == 5 and m5["n"] == 12
    clip = sorted((data / "test" / "14").iterdir())[0]
    pred = json.loads(
        cli_in_process("predict", out, clip, "--format", "json", "--prefix", 10).stdout
    )
    assert pred[0]["top"][0]["label"] in CLASSES
    assert [s["frame"] for s in pred[0]["steps"]] == sample_indices(30, 8, prefix=10).tolist()
    strict = cli_in_process(
        "train",
        "--data",
        data,
        "--out",
        tmp_path / "strict",
        "--temporal",
        "gru",
        "--backbone",
        "mobilenet_v2",
        "--weights",
        MOBILENET_V2,
        "--image-size",
        32,
        "--strict",
        check=False,
    )
    assert strict.returncode == 2 and "Traceback" not in strict.stderr


def test_end_to_end_finetuning_of_the_frame_cnn(tracks, tmp_path):
    from safetensors.torch import load_file

    import tlcv
    from tlcv.backbones import create_backbone

    run = tlcv.train(
        tracks,
        tmp_path / "e2e",
        temporal="gru",
        strategy="finetune",
        frames=4,
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=32,
        epochs=3,
        lr=3e-3,
        batch_size=8,
        patience=None,
        hidden=64,
        val_fraction=0.0,
    )
    m = json.loads((run.path / "metrics.json").read_text())
    assert m["test"]["accuracy"] >= 0.3, m["test"]  # chance 1/6
    tuned = load_file(str(run.path / "model.safetensors"))
    start = create_backbone("mobilenet_v2", weights=str(MOBILENET_V2)).net.state_dict()
    moved = [
        k
        for k, v in start.items()
        if v.is_floating_point() and not torch.equal(tuned[f"backbone.{k}"], v)
    ]
    assert len(moved) > 50 and run.info["strategy"] == "finetune"
    m2 = tlcv.evaluate(run, tracks / "test")
    assert m2["accuracy"] == pytest.approx(m["test"]["accuracy"])


def test_explain_a_clip_run_per_frame(tracks, tmp_path):
    import tlcv

    run = tlcv.train(
        tracks,
        tmp_path / "clip",
        temporal="lstm",
        frames=4,
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=64,
        epochs=1,
        batch_size=16,
        hidden=32,
        val_fraction=0.2,
    )
    clip = sorted((tracks / "test" / CLASSES[0]).iterdir())[0]
    answers = tlcv.explain(run, [clip], tmp_path / "maps")
    frames = [a for a in answers if "path" in a]
    assert len(frames) == 4 and all("#frame" in a["path"] for a in frames)
    assert len({a["target"] for a in frames}) == 1  # every frame explains the clip's class
    assert (tmp_path / "maps" / "grid.png").is_file()
