"""The run directory: everything needed to reproduce a result and reload the model.

Layout (all writes atomic):
  config.yaml        resolved configuration (every flag, defaults included)
  model.json         backbone, weights identity, preprocessing, head spec, strategy
  classes.json       class names, in output order
  model.safetensors  backbone.* and head.* tensors (no pickle anywhere)
  metrics.json/.csv  scores per split
  skipped.csv        unreadable images that were left out, with the reason
  notes.txt          what tlcv noticed about the data (empty folders, tiny classes, ...)
"""

from __future__ import annotations

import csv
import io
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from .backbones import Preprocessing, rebuild_backbone, state_fingerprint
from .errors import TlcvError
from .io import remove_stale_temps, save_tensors, sha256_file, write_json, write_text
from .runinfo import FORMAT_VERSION, MODEL_FILE, damaged, read_json, read_run_info


def environment() -> dict:
    import timm
    import torchvision

    from ._version import __version__

    return {
        "tlcv": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "machine": platform.platform(),
    }


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        names = list(dict.fromkeys(k for row in rows for k in row))
        writer = csv.DictWriter(buf, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


_HELD_LOCKS: dict[Path, object] = {}  # run folder -> open lock file, held until exit


def lock_run_folder(path: Path) -> None:
    """Hold an exclusive lock on ``path`` for this process's lifetime, or say who holds it.

    flock is released by the kernel when the holder dies (kill -9, power cut), so a lock is
    never stale; the pid in the file only names the holder in the message.
    """
    import fcntl

    path = Path(path).resolve()
    if path in _HELD_LOCKS:
        return
    handle = open(path / ".lock", "a+")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise TlcvError(
            f"{path} is being written by another tlcv process (pid {holder})",
            path=str(path),
            hint="wait for it to finish, or choose another --out",
        ) from exc
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _HELD_LOCKS[path] = handle


def unlock_run_folder(path: Path) -> None:
    handle = _HELD_LOCKS.pop(Path(path).resolve(), None)
    if handle is not None:
        handle.close()  # closing the file releases the flock


class RunWriter:
    """Creates a run directory; refuses to overwrite another run unless asked, and to share
    it with another process writing it at the same time."""

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = self.check_free(path, overwrite)
        self.path.mkdir(parents=True, exist_ok=True)
        lock_run_folder(self.path)
        for folder in (self.path, self.path / "checkpoints"):  # leftovers of killed writers
            remove_stale_temps(folder)

    @staticmethod
    def check_free(path: str | Path, overwrite: bool) -> Path:
        path = Path(path).expanduser()
        if (path / "model.json").exists() and not overwrite:
            raise TlcvError(
                f"{path} already holds a run",
                path=str(path),
                hint="choose another --out, or pass --overwrite to replace it",
            )
        if path.exists() and not path.is_dir():
            raise TlcvError(f"--out {path} is a file, not a folder", path=str(path))
        return path

    def config(self, config: dict) -> None:
        write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def notes(self, notes: list[str]) -> None:
        write_text(self.path / "notes.txt", "".join(f"- {n}\n" for n in notes))

    def skipped(self, skipped: list[tuple[str, str]]) -> None:
        write_text(
            self.path / "skipped.csv",
            rows_to_csv([{"path": p, "reason": r} for p, r in skipped]) or "path,reason\n",
        )

    def metrics(self, metrics: dict[str, dict]) -> None:
        write_json(self.path / "metrics.json", metrics)
        rows = [
            {"split": split, **{k: v for k, v in m.items() if not isinstance(v, list | dict)}}
            for split, m in metrics.items()
            if isinstance(m, dict) and "accuracy" in m
        ]
        write_text(self.path / "metrics.csv", rows_to_csv(rows))

    def model(self, model: nn.Module, classes: list[str], head_spec: dict, info: dict) -> None:
        backbone = model.backbone
        tensors = {f"backbone.{k}": v for k, v in backbone.net.state_dict().items()}
        tensors.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
        save_tensors(self.path / MODEL_FILE, tensors, {"format": "tlcv-run-v1"})
        write_json(self.path / "classes.json", classes)
        write_json(
            self.path / "model.json",
            {
                "format_version": FORMAT_VERSION,
                "weights_sha256": sha256_file(self.path / MODEL_FILE),
                "backbone": backbone.name,
                "weights_id": backbone.weights_id,
                "weights_source": backbone.weights_source,
                "preprocessing": backbone.preprocessing.to_dict(),
                "feature_dim": backbone.feature_dim,
                "head": head_spec,
                "num_classes": len(classes),
                "environment": environment(),
                **info,
            },
        )
        unlock_run_folder(self.path)  # the model is the last file a run writes


@dataclass
class Run:
    path: Path
    info: dict
    classes: list[str]
    config: dict
    # Loaded models and inference sessions, kept for repeated predictions in one process.
    loaded: dict = field(default_factory=dict, repr=False, compare=False)

    def model(self) -> nn.Module:
        """load_model() once per Run object: a warm `predict` does not reload the weights."""
        if "model" not in self.loaded:
            self.loaded["model"] = self.load_model()
        return self.loaded["model"]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.info["preprocessing"])

    def load_model(self) -> nn.Module:
        tensors = _read_weights(self.path, self.info.get("weights_sha256"))
        try:
            return self._build(tensors)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise damaged(
                self.path / "model.json", f"it does not fit {MODEL_FILE} ({first})"
            ) from exc

    def _build(self, tensors: dict) -> nn.Module:
        from .models import MODEL_KINDS, default_kind

        kind = self.info.get("task") or default_kind()
        if kind not in MODEL_KINDS:
            raise TlcvError(
                f"{self.path / 'model.json'} holds a {kind!r} model, which this tlcv cannot "
                f"rebuild (it knows: {', '.join(MODEL_KINDS.names())})",
                path=str(self.path / "model.json"),
                hint="the run was written by a newer tlcv: pip install -U tlcv",
            )
        rebuild = MODEL_KINDS.get(kind)
        backbone = rebuild_backbone(self.info["backbone"], self.preprocessing)
        backbone.net.load_state_dict(
            {k[len("backbone.") :]: v for k, v in tensors.items() if k.startswith("backbone.")},
            strict=True,
        )
        backbone.weights_id = state_fingerprint(backbone.net)
        head_state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
        spec = self.info["head"]
        if "image_size" in self.info and isinstance(spec, dict):  # runs from before the model
            spec = {"image_size": self.info["image_size"], **spec}  # recorded its own scale
        return rebuild(backbone, spec, head_state)

    @property
    def metrics(self) -> dict:
        """Scores the run wrote (metrics.json), read once; {} for a run written without."""
        if "metrics" not in self.loaded:
            file = self.path / "metrics.json"
            self.loaded["metrics"] = read_json(file, dict) if file.is_file() else {}
        return self.loaded["metrics"]

    @property
    def notes(self) -> list[str]:
        """What tlcv noticed while training (notes.txt), one entry per note."""
        if "notes" not in self.loaded:
            file = self.path / "notes.txt"
            text = file.read_text(encoding="utf-8", errors="replace") if file.is_file() else ""
            self.loaded["notes"] = [n[2:] for n in text.splitlines() if n.startswith("- ")]
        return self.loaded["notes"]


def load_run(path: str | Path) -> Run:
    """Open a run directory written by any strategy; a damaged or foreign file in it is a
    one-line error naming the file (nothing in a run folder is ever executed)."""
    path = Path(path).expanduser()
    info, classes = read_run_info(path)
    return Run(path, info, classes, read_run_config(path / "config.yaml"))


def interrupted_run_config(run_dir: Path, command: str) -> dict:
    """The saved configuration of a run that has not finished (a damaged file: one line)."""
    if not (run_dir / "config.yaml").is_file():
        raise TlcvError(
            f"{run_dir} is not a tlcv run folder (no config.yaml)",
            path=str(run_dir),
            hint=f"give the --out folder of the interrupted `{command}`",
        )
    if (run_dir / "model.json").is_file():
        raise TlcvError(
            f"{run_dir} already finished",
            path=str(run_dir),
            hint="evaluate or predict with it; nothing to resume",
        )
    return read_run_config(run_dir / "config.yaml")


def read_run_config(file: Path) -> dict:
    if not file.exists():
        return {}
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0][:100]
        raise damaged(file, f"not a plain YAML mapping ({first})") from exc
    if not isinstance(config, dict):
        raise damaged(file, "empty or not a mapping of options")
    return config


def _read_weights(path: Path, expected_sha256: str | None) -> dict:
    file = path / MODEL_FILE
    if expected_sha256 and sha256_file(file) != expected_sha256:
        raise damaged(file, "its checksum differs from the one recorded in model.json")
    try:
        return load_file(str(file))
    except Exception as exc:  # noqa: BLE001 - SafetensorError and friends: not our format
        raise damaged(file, f"not a safetensors file ({str(exc)[:80]})") from exc
