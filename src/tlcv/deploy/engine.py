"""ONNX Runtime inference: a session over an exported tlcv graph, without torch.

An exported graph takes uint8 RGB images (B, 3, S, S), already resized and centre-cropped as
the metadata says, and returns ``features`` (B, D) and, for a run, ``logits`` (B, C); the
normalisation is inside the graph. This module needs only numpy and onnxruntime, so it is also
what a deployment without torch would run.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np

from ..config import ENGINES  # declared once, with the CLI option
from ..errors import TlcvError

METADATA_PREFIX = "tlcv."


def quiet():
    """The exporters print pages of progress and warnings; a CLI's stdout stays clean."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return stack


def require_onnxruntime():
    """onnxruntime, or a one-line error naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise TlcvError(
            "the onnxruntime engine needs the onnxruntime package",
            hint="pip install 'tlcv[onnx]'",
        ) from exc
    return onnxruntime


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise TlcvError(f"unknown --engine {engine!r}", hint=f"choose one of: {', '.join(ENGINES)}")
    return engine


def default_threads() -> int:
    """One intra-op thread per core this process may use (cgroup/affinity aware)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


class OnnxEngine:
    """An ONNX Runtime session over a tlcv graph, with its metadata read back."""

    engine = "onnxruntime"
    sha256: str | None = None  # set once the file was checked against its run's record

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = require_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise TlcvError(f"no ONNX file at {self.path}", path=str(self.path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: spinning threads took the cores from the
        # decoding and torch work around each run (one-image predict 28 -> 20 ms here while
        # another job shared the 2 cores; docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - corrupt file, unsupported opset, ...
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
            raise TlcvError(
                f"ONNX Runtime cannot load {self.path}: {first}",
                path=str(self.path),
                hint="export it again with `tlcv export RUN` (a newer opset may need a newer "
                "onnxruntime: pip install -U onnxruntime)",
            ) from exc
        self.outputs = [o.name for o in self.session.get_outputs()]
        if [i.name for i in self.session.get_inputs()] != ["images"]:
            raise TlcvError(
                f"{self.path} is not a tlcv graph (its input is not 'images')",
                path=str(self.path),
                hint="export it with `tlcv export RUN`",
            )

    @cached_property
    def metadata(self) -> dict:
        """The tlcv.* metadata entries, JSON-decoded (classes, preprocessing, fingerprint...)."""
        raw = self.session.get_modelmeta().custom_metadata_map
        out = {}
        for key, value in raw.items():
            if key.startswith(METADATA_PREFIX):
                try:
                    out[key[len(METADATA_PREFIX) :]] = json.loads(value)
                except ValueError:
                    out[key[len(METADATA_PREFIX) :]] = value
        return out

    def run(self, images: np.ndarray, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        """uint8 (B, 3, S, S) -> the named outputs (all by default)."""
        names = outputs or self.outputs
        values = self.session.run(names, {"images": np.ascontiguousarray(images, np.uint8)})
        return dict(zip(names, values, strict=True))


class OnnxEncoder:
    """Looks like a tlcv Backbone to the feature extractor (name, weights_id, preprocessing,
    feature_dim) but computes features with ONNX Runtime. ``weights_id`` carries the engine and
    the graph's identity, so its cached features never mix with torch ones."""

    engine = "onnxruntime"

    def __init__(self, onnx: OnnxEngine, name: str, weights_id: str, preprocessing, dim: int):
        self.onnx = onnx
        self.name = name
        self.weights_id = weights_id
        self.preprocessing = preprocessing
        self.feature_dim = dim

    def features(self, images: np.ndarray) -> np.ndarray:
        return self.onnx.run(images, ["features"])["features"]
