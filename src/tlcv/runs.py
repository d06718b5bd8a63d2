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
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from .backbones import Backbone, Preprocessing, rebuild_backbone, state_fingerprint
from .errors import TlcvError
from .heads import head_from_state
from .io import save_tensors, write_json, write_text

MODEL_FILE = "model.safetensors"


class ClassifierModel(nn.Module):
    """Backbone + head: images -> class scores. ``features`` exposes the embedding."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


class SequenceModel(nn.Module):
    """Per-frame backbone + temporal head: clips -> class scores, and scores per step."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(feats, lengths)


def environment() -> dict:
    import timm
    import torchvision

    from . import __version__

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


class RunWriter:
    """Creates a run directory; refuses to overwrite another run unless asked."""

    def __init__(self, path: str | Path, overwrite: bool = False):
        self.path = self.check_free(path, overwrite)
        self.path.mkdir(parents=True, exist_ok=True)

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

    def model(
        self, model: ClassifierModel, classes: list[str], head_spec: dict, info: dict
    ) -> None:
        backbone = model.backbone
        tensors = {f"backbone.{k}": v for k, v in backbone.net.state_dict().items()}
        tensors.update({f"head.{k}": v for k, v in model.head.state_dict().items()})
        save_tensors(self.path / MODEL_FILE, tensors, {"format": "tlcv-run-v1"})
        write_json(self.path / "classes.json", classes)
        write_json(
            self.path / "model.json",
            {
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


@dataclass
class Run:
    path: Path
    info: dict
    classes: list[str]
    config: dict
    # Loaded models and inference sessions, kept for repeated predictions in one process.
    loaded: dict = field(default_factory=dict, repr=False, compare=False)

    def model(self) -> ClassifierModel | SequenceModel:
        """load_model() once per Run object: a warm `predict` does not reload the weights."""
        if "model" not in self.loaded:
            self.loaded["model"] = self.load_model()
        return self.loaded["model"]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.info["preprocessing"])

    def load_model(self) -> ClassifierModel:
        tensors = load_file(str(self.path / MODEL_FILE))
        backbone = rebuild_backbone(self.info["backbone"], self.preprocessing)
        backbone.net.load_state_dict(
            {k[len("backbone.") :]: v for k, v in tensors.items() if k.startswith("backbone.")},
            strict=True,
        )
        backbone.weights_id = state_fingerprint(backbone.net)
        head_state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
        if self.is_sequence:
            from .heads import TemporalHead

            cfg = dict(self.info["head"])
            cfg.pop("type", None)
            kind, in_features, classes = (
                cfg.pop("kind"),
                cfg.pop("in_features"),
                cfg.pop("num_classes"),
            )
            head = TemporalHead(kind, in_features, classes, **cfg)
            head.load_state_dict(head_state, strict=True)
            return SequenceModel(backbone, head.eval()).eval()
        return ClassifierModel(backbone, head_from_state(self.info["head"], head_state)).eval()

    @property
    def is_sequence(self) -> bool:
        return self.info.get("task") == "sequence"


def load_run(path: str | Path) -> Run:
    """Open a run directory written by any strategy."""
    path = Path(path).expanduser()
    if not (path / "model.json").is_file() or not (path / MODEL_FILE).is_file():
        hint = "give the --out folder of a finished `tlcv train` run"
        if path.is_dir() and (path / "config.yaml").exists():
            hint = "this run did not finish; run the training again (cached features are reused)"
        raise TlcvError(f"{path} is not a finished tlcv run", path=str(path), hint=hint)
    info = json.loads((path / "model.json").read_text())
    classes = json.loads((path / "classes.json").read_text())
    config = (
        yaml.safe_load((path / "config.yaml").read_text())
        if (path / "config.yaml").exists()
        else {}
    )
    return Run(path, info, classes, config or {})
