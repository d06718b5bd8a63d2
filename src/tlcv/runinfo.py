"""A run folder's JSON files read without torch: what `predict --engine onnxruntime` and
`serve --engine onnxruntime` need (model.json, classes.json, the weights' fingerprint).
runs.py builds the torch model on top of the same checks."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import TlcvError
from .io import sha256_file

MODEL_FILE = "model.safetensors"
# Version of the run-folder layout. Runs written before it was recorded are version 1.
FORMAT_VERSION = 1
REQUIRED_INFO = ("backbone", "preprocessing", "head", "num_classes")


def damaged(file: Path, what: str) -> TlcvError:
    return TlcvError(
        f"{file.name} in {file.parent} is damaged: {what}",
        path=str(file),
        hint="restore the run folder from a copy, or train the run again",
    )


def read_json(file: Path, kind: type):
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise damaged(file, f"not valid JSON ({str(exc)[:80]})") from exc
    if not isinstance(value, kind):
        raise damaged(file, f"expected a JSON {kind.__name__}, found {type(value).__name__}")
    return value


def read_run_info(path: Path) -> tuple[dict, list[str]]:
    """(model.json, classes.json) of a finished run, checked: a damaged or foreign file is one
    line naming it (nothing in a run folder is ever executed)."""
    if not (path / "model.json").is_file() or not (path / MODEL_FILE).is_file():
        hint = "give the --out folder of a finished `tlcv train` run"
        if path.is_dir() and (path / "config.yaml").exists():
            hint = "this run did not finish; run the training again (cached features are reused)"
        raise TlcvError(f"{path} is not a finished tlcv run", path=str(path), hint=hint)
    info = read_json(path / "model.json", dict)
    missing = [k for k in REQUIRED_INFO if k not in info]
    if missing:
        raise damaged(path / "model.json", f"lacks {', '.join(missing)}")
    version = info.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise TlcvError(
            f"{path} was written by a newer tlcv (run format {version}; this tlcv reads "
            f"{FORMAT_VERSION})",
            path=str(path),
            hint="upgrade tlcv: pip install -U tlcv",
        )
    classes = read_json(path / "classes.json", list)
    if len(classes) != info["num_classes"] or not all(isinstance(c, str) for c in classes):
        raise damaged(
            path / "classes.json",
            f"holds {len(classes)} entries for a model of {info['num_classes']} classes",
        )
    return info, classes


def weights_fingerprint(path: Path) -> str:
    """Identity of a run's weights (the first 16 hex digits of the file's SHA-256): an
    exported graph carries it, so a graph of replaced weights is never run."""
    return sha256_file(path / MODEL_FILE)[:16]
