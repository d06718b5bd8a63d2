"""Bad input found by a hostile test of tlcv (issue 11), each fixed at its root."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_cli import tlcv

from conftest import DATA, MOBILENET_V2, link_subset
from tlcv import api
from tlcv.errors import TlcvError

BAD_NAME = b"bad_\xff\xfe_name.jpg"  # not valid UTF-8


@pytest.fixture
def folder_with_a_non_utf8_name(tmp_path) -> Path:
    root = tmp_path / "data"
    for cls, src in (("bike", "bike"), ("mug", "mug")):
        (root / cls).mkdir(parents=True)
        for f in sorted((DATA / "office31" / "dslr" / src).iterdir())[:5]:
            shutil.copyfile(f, root / cls / f.name)
    first = sorted((root / "bike").iterdir())[0]
    shutil.copyfile(first, os.path.join(os.fsencode(root / "bike"), BAD_NAME))
    return root


def test_file_names_that_are_not_utf8_work_everywhere(folder_with_a_non_utf8_name, tmp_path):
    data = folder_with_a_non_utf8_name
    common = dict(backbone="mobilenet_v2", weights=str(MOBILENET_V2), image_size=32)
    fs = api.extract(data, cache=str(tmp_path / "c"), **common)
    assert len(fs.items) == 11 and any("bad_" in it.path for it in fs.items)
    run = api.train(data, tmp_path / "run", cache=str(tmp_path / "c"), **common)
    predictions = api.predict(run, [data / "bike"], cache=str(tmp_path / "c"))
    assert sum("bad_" in p["path"] for p in predictions) == 1
    assert all("top" in p for p in predictions)
    metrics = api.evaluate(run, data, cache=str(tmp_path / "c"), out=tmp_path / "eval")
    assert metrics["n"] == 11
    assert (
        os.fsencode(data / "bike") + b"/" + BAD_NAME
        in (tmp_path / "eval" / "predictions.csv").read_bytes()
    )


@pytest.mark.parametrize("size", [0, -5, 3, 100_000])
def test_unusable_image_sizes_are_refused_up_front(size, tmp_path):
    with pytest.raises(TlcvError, match="--image-size"):
        api.extract(DATA / "office31" / "dslr", "mobilenet_v2", image_size=size, cache=tmp_path)


def test_a_huge_image_size_is_one_line_from_the_cli(tmp_path):
    done = tlcv(
        "train",
        "--data",
        DATA / "office31" / "dslr",
        "--out",
        tmp_path / "r",
        "--image-size",
        "100000",
        check=False,
    )
    assert done.returncode == 2 and "too large for this machine" in done.stderr
    assert "Traceback" not in done.stderr


def test_broken_and_looping_symlinks_are_named_not_dropped_silently(tmp_path):
    data = link_subset(DATA / "office31" / "dslr", tmp_path / "d", 4, ["bike", "mug"])
    (data / "bike" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (data / "mug" / "loop_a.jpg").symlink_to("loop_b.jpg")
    (data / "mug" / "loop_b.jpg").symlink_to("loop_a.jpg")
    run = api.train(
        data,
        tmp_path / "run",
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=32,
        cache=str(tmp_path / "c"),
    )
    notes = (run.path / "notes.txt").read_text()
    assert "gone.jpg" in notes and "loop_a.jpg" in notes and "symbolic link" in notes
    with pytest.raises(TlcvError, match="symbolic link"):
        api.extract(data, "mobilenet_v2", strict=True, cache=tmp_path / "c2")


def test_manifest_rows_with_empty_labels_or_listed_twice_are_named(tmp_path):
    from tlcv.data import discover

    files = sorted((DATA / "office31" / "dslr" / "bike").iterdir())[:3]
    rows = ["path,label", f"{files[0]},bike", f"{files[1]},", f"{files[2]},bike", f"{files[0]},mug"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    source = discover(manifest)
    assert source.classes == ["bike"]  # no class "" and no 'mug' from the duplicate
    assert len(source.all_items()) == 2
    reasons = dict(source.missing)
    assert reasons[str(files[1])] == "line 3: empty label"
    assert "already listed on line 2" in reasons[str(files[0])]
    with pytest.raises(TlcvError, match="line 3: empty label"):
        discover(manifest, strict=True)


def test_npz_with_more_labels_than_images_is_refused(tmp_path):
    import numpy as np

    from tlcv.data import discover

    bad = tmp_path / "bad.npz"
    np.savez(bad, train_images=np.zeros((3, 8, 8), np.uint8), train_labels=np.arange(5))
    with pytest.raises(TlcvError, match="3 images but train_labels 5 labels"):
        discover(bad)


def test_a_jpeg_named_mp4_is_not_a_one_frame_clip(tmp_path):
    from tlcv.errors import BadImageError
    from tlcv.video.decode import read_frames

    fake = tmp_path / "clip.mp4"
    shutil.copyfile(sorted((DATA / "office31" / "dslr" / "bike").iterdir())[0], fake)
    with pytest.raises(BadImageError, match="not a video"):
        read_frames(str(fake))


def test_one_image_per_class_says_there_is_no_validation_or_test(tmp_path):
    from tlcv.data import discover, make_splits

    data = link_subset(DATA / "office31" / "dslr", tmp_path / "d", 1, ["bike", "mug", "ruler"])
    notes = " ".join(make_splits(discover(data)).notes)
    assert "no validation images" in notes and "no test images" in notes


def test_a_run_folder_is_locked_while_another_process_writes_it(tmp_path):
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tlcv.runs import lock_run_folder; "
            f"lock_run_folder({str(out)!r}); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        data = link_subset(DATA / "office31" / "dslr", tmp_path / "d", 4, ["bike", "mug"])
        args = dict(backbone="mobilenet_v2", weights=str(MOBILENET_V2), image_size=32)
        with pytest.raises(TlcvError, match=f"another tlcv process \\(pid {holder.pid}\\)"):
            api.train(data, out, cache=str(tmp_path / "c"), **args)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    run = api.train(data, out, cache=str(tmp_path / "c"), **args)  # a dead holder holds nothing
    assert (run.path / "model.json").is_file()


def test_temporary_files_of_killed_writers_are_cleaned(tmp_path):
    import subprocess
    import sys

    from tlcv.features.cache import FeatureCache
    from tlcv.runs import RunWriter

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    cache = FeatureCache(tmp_path / "cache", {"backbone": "x"})
    leftovers = [
        cache.dir / f".shard-abc.safetensors.{dead}.xyz.tmp",
        tmp_path / "run" / "checkpoints" / f".last.ckpt.{dead}.tmp",
        tmp_path / "run" / f".metrics.json.{dead}.q1.tmp",
    ]
    live = tmp_path / "run" / f".history.csv.{os.getpid()}.q2.tmp"  # a live writer's: kept
    for f in [*leftovers, live]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"partial")
    FeatureCache(tmp_path / "cache", {"backbone": "x"})
    RunWriter(tmp_path / "run")
    assert not any(f.exists() for f in leftovers) and live.exists()


def test_a_full_disk_is_one_line_and_corrupts_nothing(tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    data = link_subset(DATA / "office31" / "dslr", tmp_path / "d", 3, ["bike", "mug"])
    args = dict(weights=str(MOBILENET_V2), image_size=32, cache=str(tmp_path / "c"))

    def full(*a, **k):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(TlcvError, match=r"could not write .* MB free there"):
        api.extract(data, "mobilenet_v2", **args)
    monkeypatch.undo()
    assert not list((tmp_path / "c").rglob("*.tmp"))
    assert api.extract(data, "mobilenet_v2", **args).computed == 6  # nothing half-written


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("finished")
    data = link_subset(DATA / "office31" / "dslr", base / "d", 4, ["bike", "mug", "ruler"])
    run = api.train(
        data,
        base / "run",
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        image_size=32,
        cache=str(base / "c"),
    )
    return run.path


DAMAGE = {
    "pickle instead of weights": ("model.safetensors", b"\x80\x04K\x01.", "checksum differs"),
    "truncated weights": ("model.safetensors", None, "checksum differs"),
    "model.json malformed": ("model.json", b"{not json", "not valid JSON"),
    "model.json empty object": ("model.json", b"{}", "lacks backbone"),
    "classes.json short": ("classes.json", b'["bike"]', "holds 1 entries"),
    "classes.json malformed": ("classes.json", b"[bike", "not valid JSON"),
    "config.yaml python tag": (
        "config.yaml",
        b"!!python/object/apply:os.system ['touch PWNED']",
        "not a plain YAML mapping",
    ),
    "config.yaml empty": ("config.yaml", b"", "empty or not a mapping"),
    "newer format": ("model.json", "newer", "written by a newer tlcv"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_run_folder_is_one_line_naming_the_file(case, finished_run, tmp_path):
    import json

    from tlcv.runs import load_run

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    name, content, message = DAMAGE[case]
    target = run / name
    if content is None:
        target.write_bytes(target.read_bytes()[:1000])
    elif content == "newer":
        info = json.loads(target.read_text())
        target.write_text(json.dumps({**info, "format_version": 99}))
    else:
        target.write_bytes(content)
    with pytest.raises(TlcvError, match=message) as info:
        api.predict(load_run(run), [DATA / "office31" / "dslr" / "bike"])
    assert name in str(info.value) or "newer" in message
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_a_run_written_before_format_versions_still_loads(finished_run, tmp_path):
    import json

    run = tmp_path / "old"
    shutil.copytree(finished_run, run)
    info = json.loads((run / "model.json").read_text())
    for key in ("format_version", "weights_sha256"):
        info.pop(key)
    (run / "model.json").write_text(json.dumps(info))
    assert api.predict(run, [DATA / "office31" / "dslr" / "bike"])[0]["top"]


def test_a_model_kind_this_tlcv_does_not_know_is_named_with_what_to_do(finished_run, tmp_path):
    import json

    run = tmp_path / "future"
    shutil.copytree(finished_run, run)
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, "task": "hologram"}))
    with pytest.raises(TlcvError, match="'hologram' model") as info:
        api.predict(run, [DATA / "office31" / "dslr" / "bike"])
    assert "model.json" in str(info.value) and "pip install -U tlcv" in info.value.render()


def test_a_damaged_resume_checkpoint_is_named(tmp_path):
    from tlcv.engine.fit import _check_checkpoint

    bad = tmp_path / "last.ckpt"
    bad.write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(TlcvError, match="damaged and cannot be resumed"):
        _check_checkpoint(bad)


@pytest.mark.parametrize(
    ("env", "expected"), [(None, 0), ("", 0), ("7", 7), ("25", 19), ("-3", 0), ("x", 0)]
)
def test_decode_workers_keep_normal_priority_unless_asked(env, expected, monkeypatch):
    """Nice 19 workers starved beside any other busy process (issue 11, item 12)."""
    from tlcv.data.loading import WORKER_NICE_ENV, worker_nice

    if env is None:
        monkeypatch.delenv(WORKER_NICE_ENV, raising=False)
    else:
        monkeypatch.setenv(WORKER_NICE_ENV, env)
    assert worker_nice() == expected


def test_a_decode_worker_runs_at_the_priority_asked_for(tmp_path, monkeypatch):
    from torch.utils.data import DataLoader, Dataset

    from tlcv.data.loading import lower_priority

    class Nice(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return os.nice(0)

    base = os.nice(0)
    for env, want in (("0", base), ("4", min(19, base + 4))):
        monkeypatch.setenv("TLCV_WORKER_NICE", env)
        loader = DataLoader(Nice(), num_workers=1, worker_init_fn=lower_priority)
        assert {int(x) for x in loader} == {want}


@pytest.mark.parametrize("command", ["train", "adapt"])
def test_resuming_a_run_whose_config_was_tampered_with_is_one_line(command, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("!!python/object/apply:os.system ['touch PWNED']\n")
    resume = api.resume if command == "train" else api.resume_adapt
    with pytest.raises(TlcvError, match="config.yaml .*not a plain YAML mapping"):
        resume(run)
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()
