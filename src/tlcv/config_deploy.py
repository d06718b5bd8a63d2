"""The options of the commands used after training: `tlcv explain`, `tlcv serve`,
`tlcv export` (every option a field, as in config.py, whose shared pieces they use)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import EXPLAIN_METHODS, _engine
from .errors import TlcvError
from .options import Validated, option


@dataclass
class ExplainConfig(Validated):
    out: str = option(help="Folder for the PNGs.")
    method: str = option("gradcam", "How the maps are computed.", choices=EXPLAIN_METHODS)
    target: str | None = option(None, "Class the maps are for [default: each image's top class].")
    top_k: int = option(3, "Classes named in each title.")


@dataclass
class ServeConfig(Validated):
    host: str = option(
        "127.0.0.1",
        "Address to bind; anything but 127.0.0.1 is reachable from other machines, and needs "
        "--api-key (or --insecure).",
    )
    api_key: str | None = option(
        None,
        "Require 'Authorization: Bearer KEY' on every route but /healthz [default: the "
        "TLCV_API_KEY environment variable; none].",
    )
    insecure: bool = option(
        False, "Allow a --host beyond loopback without an API key (a network you trust)."
    )
    port: int = option(8000, "TCP port.")
    engine: str = _engine()
    max_upload_mb: float = option(
        10.0, "Largest accepted upload, in MB (413 as soon as the body passes it)."
    )
    header_timeout: float = option(
        10.0, "Seconds a connection may take to send its request headers before it is closed."
    )
    body_timeout: float = option(30.0, "Seconds allowed between two chunks of a body (408).")
    max_connections: int = option(
        64, "Open connections and requests at once; beyond it new ones get 503."
    )
    max_pending: int = option(
        32, "Prediction / explanation requests waiting or running at once; beyond it 429."
    )
    request_timeout: float = option(
        60.0, "Seconds a prediction may take, its wait for the model included; then 503."
    )

    def check(self) -> None:
        limits = (self.max_upload_mb, self.header_timeout, self.body_timeout, self.request_timeout)
        if min(limits) <= 0:
            raise TlcvError(
                "--max-upload-mb, --header-timeout, --body-timeout and --request-timeout "
                "must be > 0"
            )
        if min(self.max_connections, self.max_pending) < 1:
            raise TlcvError("--max-connections and --max-pending must be at least 1")
        if self.api_key is not None and not self.api_key.strip():
            raise TlcvError("--api-key is empty", hint="give a long random string")


@dataclass
class ExportConfig(Validated):
    format: str = option("onnx", "Export format (onnx, the only one so far).", choices=("onnx",))
    out: str | None = option(None, "ONNX file [default: RUN/export/model.onnx].")
    int8: bool = option(
        False,
        "Also write a statically quantized int8 copy (calibrated on training images); refused "
        "if validation accuracy drops by more than --max-drop points.",
    )
    data: str | None = option(
        None, "Labelled images to check (and calibrate) on [default: the run's own]."
    )
    calibration: int = option(128, "Training images used to calibrate --int8.")
    max_drop: float = option(1.0, "Largest accepted int8 accuracy drop (points).")
