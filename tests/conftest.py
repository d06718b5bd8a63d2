"""Shared fixtures: real data from ../shared, small subsets, a private feature cache."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TLCV_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
WEIGHTS = SHARED / "weights"
MOBILENET_V2 = WEIGHTS / "mobilenet_v2-b0353104.pth"


def pytest_collection_modifyitems(config, items):
    """Without ../shared, only modules that declare ``NEEDS_SHARED = False`` run."""
    if not DATA.is_dir():
        skip = pytest.mark.skip(reason=f"shared data not found at {DATA}")
        for item in items:
            if getattr(item.module, "NEEDS_SHARED", True):
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own feature cache and torch hub dir: no cross-talk."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("TLCV_CACHE", str(base / "feature-cache"))
    monkeypatch.setenv("TORCH_HOME", str(base / "torch-home"))
    monkeypatch.setenv("TLCV_OFFLINE", "1")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def cli_in_process(*args, check: bool = True) -> CliResult:
    """`tlcv ARGS` through the CLI's own entry point, in the test's process: the same parsing,
    errors and printing as the installed command, without a fresh interpreter's seconds of
    imports (each CLI test keeps one real subprocess call for the real start)."""
    from tlcv.cli import main

    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["tlcv", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as stopped:
        code = stopped.code if isinstance(stopped.code, int) else (0 if stopped.code is None else 1)
    finally:
        sys.argv = argv
    done = CliResult(code, out.getvalue(), err.getvalue())
    if check:
        assert code == 0, done.stderr[-3000:]
    return done


def link_subset(src: Path, dst: Path, per_class: int, classes: list[str] | None = None) -> Path:
    """A small ImageFolder of symlinks to real images (nothing copied)."""
    for class_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        if classes is not None and class_dir.name not in classes:
            continue
        target = dst / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(class_dir.iterdir())[:per_class]:
            (target / f.name).symlink_to(f)
    return dst


@pytest.fixture
def office_small(tmp_path) -> Path:
    """4 Office-31 amazon classes, 12 images each."""
    return link_subset(
        DATA / "office31" / "amazon",
        tmp_path / "office",
        12,
        ["back_pack", "bike", "calculator", "keyboard"],
    )


@pytest.fixture(scope="session")
def office_run(tmp_path_factory):
    """A MobileNetV2 features run on 4 Office-31 classes (bike, keyboard, mug, scissors): a
    real image classifier for explanations and serving."""
    from tlcv import api

    base = tmp_path_factory.mktemp("office-run")
    data = link_subset(
        DATA / "office31" / "amazon", base / "data", 10, ["bike", "keyboard", "mug", "scissors"]
    )
    return api.train(
        data,
        base / "run",
        strategy="features",
        backbone="mobilenet_v2",
        weights=str(MOBILENET_V2),
        test_fraction=0.0,
        val_fraction=0.2,
    )


def kill_after_first_checkpoint(command: list, out: Path) -> None:
    """Start ``command`` (a `tlcv train` writing ``out``), kill -9 it as soon as its first
    resume checkpoint exists (a finished epoch), and check it died before finishing."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlcv.cli", *map(str, command)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint, deadline = out / "checkpoints" / "last.ckpt", time.time() + 300
    while time.time() < deadline and proc.poll() is None and not checkpoint.is_file():
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model.json").exists()


def tlcv_torchrun(args: list, port: int, timeout: int = 600) -> None:
    """``tlcv ARGS`` as two torchrun processes on gloo (one thread each), which must succeed."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(port), "-m", "tlcv.cli", *map(str, args)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]


def conv_output_dtypes(monkeypatch) -> set:
    """The dtypes every Conv2d returns while gradients are on (training steps, not
    evaluation), filled as the test runs: how a test sees that autocast really reached them."""
    import torch

    seen: set = set()
    original = torch.nn.Conv2d._conv_forward

    def spy(self, x, weight, bias):
        out = original(self, x, weight, bias)
        if torch.is_grad_enabled():
            seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "_conv_forward", spy)
    return seen
