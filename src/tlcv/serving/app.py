"""`tlcv serve`: a run behind FastAPI. The model is loaded once and shared; inference runs in
worker threads (never on the event loop). Torch runs one request at a time (it already uses
every core per call, and the explainers' hooks must not see another request's forward pass);
ONNX Runtime engines answer from the graph alone, without torch (deploy/runtime.py), with
concurrent calls into one session.

Uploads are read into memory only (nothing is written to disk or kept), capped in size,
sniffed by decoding (the extension and the declared type are not trusted), and refused above
the decompression-bomb pixel limit; every bad request is a 4xx with a JSON ``detail``.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse, Response
from PIL import Image, ImageOps

from .._version import __version__
from ..data.decode import MAX_PIXELS
from ..runinfo import read_run_info
from .access import Access, Admission, Metrics
from .limits import BODY_TIMEOUT_S, RequestLimits
from .page import PAGE

MAX_UPLOAD_MB = 10
MAX_PENDING = 32  # inference requests waiting or running at once; 429 beyond
REQUEST_TIMEOUT_S = 60.0  # an inference request's answer, its wait included; 503 after
FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"}


def decode_upload(data: bytes, draft_size: int | None = None) -> Image.Image:
    """An RGB image from uploaded bytes, or an HTTPException saying what is wrong.
    ``draft_size``: a JPEG may decode at 1/2, 1/4 or 1/8 scale while staying at least that
    large (a classifier resizes it smaller anyway; `tlcv predict` decodes the same way)."""
    if not data:
        raise HTTPException(400, "the upload is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise HTTPException(413, f"image is {width}x{height}: over the pixel limit")
            if image.format not in FORMATS:
                raise HTTPException(415, f"{image.format} images are not accepted")
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image = ImageOps.exif_transpose(image)
            image.load()
    except HTTPException:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise HTTPException(413, "image refused: decompression bomb") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the upload's fault
        raise HTTPException(415, "not a readable image (JPEG, PNG, WebP, BMP, GIF, TIFF)") from exc
    return image.convert("RGB")


class Server:
    """The run, its task, model and engine, and the lock that serialises inference. What an
    answer holds is the task's (``serve_answer`` / ``serve_picture``)."""

    def __init__(self, run_dir: str | Path, engine: str = "torch"):
        from ..errors import TlcvError
        from ..tasks import task_of_info

        self.engine = engine
        self.lock = threading.Lock()
        self.run_dir = Path(run_dir)
        info = read_run_info(self.run_dir.expanduser())[0]  # a damaged run: one line
        self.task = task_of_info(info)
        if self.task.serve_refusal:
            raise TlcvError(
                f"{self.task.name} runs cannot be served: {self.task.serve_refusal}",
                path=str(run_dir),
            )
        if engine not in self.task.serve_engines:
            raise TlcvError(
                f"--engine {engine} does not serve {self.task.name} runs",
                hint=f"choose one of: {', '.join(self.task.serve_engines)}",
            )
        # a classifier (no answers of its own) resizes uploads small: JPEGs decode in draft
        classifier = self.task.own("runtime", "answer") is None  # runtime.py: torch-free
        self.draft_size = int(info["preprocessing"]["resize_size"]) if classifier else None
        # ONNX Runtime engines answer from the graph alone: torch is not imported
        self.torch_free = engine != "torch" and self.task.torch_free
        if self.torch_free:
            from ..deploy.engine import default_threads
            from ..deploy.runtime import open_graph_run

            # as many graph runs at once as there are cores: concurrent calls into one session
            # beat one at a time (64 vs 51 answers/s, classifier), but each holds its own
            # buffers (8 PatchCore runs at once peaked at 2 GB)
            self.slots = threading.BoundedSemaphore(default_threads())
            self.run = open_graph_run(run_dir)
            self.onnx = self.run.engine(int8=engine.endswith("int8"))
            return
        from ..runs import load_run

        self.run = load_run(run_dir)
        self.model = self.run.model()  # loaded once, shared by every request
        if engine != "torch":  # a task that keeps torch: the classifier's exported encoder
            from ..deploy.export import run_encoder

            self.onnx = run_encoder(self.run, int8=engine.endswith("int8")).onnx

    def torch_server(self) -> Server:
        """This run on the torch engine, loaded on first need (a classifier's Grad-CAM needs
        gradients, which the graph has not): the torch-free server imports torch only then."""
        if not hasattr(self, "_torch"):
            with self.lock:
                if not hasattr(self, "_torch"):
                    self._torch = Server(self.run_dir, "torch")
        return self._torch

    def metadata(self) -> dict:
        info = self.run.info
        return {
            "run": self.run.path.name,
            "task": self.task.name,
            "classes": self.run.classes,
            "backbone": info["backbone"],
            "preprocessing": info["preprocessing"],
            "fingerprint": info.get("weights_sha256"),
            "engine": self.engine,
            "tlcv_version": __version__,
            "page": self.task.page_labels,
        }

    def predict(self, image: Image.Image, top_k: int) -> dict:
        if self.torch_free:
            from ..deploy import runtime

            return (self.run.own("answer") or runtime.answer)(self, image, top_k)
        return self.task.serve_answer(self, image, top_k)

    def explain(self, image: Image.Image, target: str | None) -> bytes:
        if self.torch_free:
            own = self.run.own("picture")
            if own is not None:
                return own(self, image, target)
            try:
                return self.torch_server().explain(image, target)
            except ImportError as exc:  # a deployment without torch: no gradients to explain
                raise HTTPException(
                    501, "explanations need torch, which this server does not have "
                    "(pip install 'tlcv[explain]')") from exc  # fmt: skip
        return self.task.serve_picture(self, image, target)


async def _read(file: UploadFile, limit_mb: float) -> bytes:
    limit = int(limit_mb * 1024 * 1024)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload over the {limit_mb:g} MB limit")
    return data


def create_app(
    run_dir: str | Path,
    engine: str = "torch",
    max_upload_mb: float = MAX_UPLOAD_MB,
    body_timeout: float = BODY_TIMEOUT_S,
    api_key: str | None = None,
    max_pending: int = MAX_PENDING,
    request_timeout: float = REQUEST_TIMEOUT_S,
) -> FastAPI:
    """The FastAPI app of one run (uvicorn serves it; tests drive it with TestClient).
    ``api_key``: required as a bearer token on every route but /healthz (access.py)."""
    server = Server(run_dir, engine)
    metrics = Metrics()
    admission = Admission(max_pending, request_timeout, metrics)
    app = FastAPI(
        title=f"tlcv: {server.run.path.name}",
        version=__version__,
        description="Predictions and explanations of one tlcv run.",
    )
    app.state.server = server
    app.add_middleware(
        RequestLimits,
        max_upload_mb=max_upload_mb,
        body_timeout=body_timeout,
    )
    routes = {"/", "/healthz", "/metadata", "/metrics", "/predict", "/explain", "/docs",
              "/openapi.json"}  # fmt: skip
    app.add_middleware(Access, api_key=api_key, metrics=metrics, routes=routes)  # outermost

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metrics", response_class=Response)
    async def prometheus() -> Response:
        body, content_type = metrics.text()
        return Response(body, media_type=content_type)

    @app.get("/metadata")
    async def metadata() -> dict:
        return server.metadata()

    @app.post("/predict")
    async def predict(
        file: Annotated[UploadFile, File()], top_k: Annotated[int, Query(ge=1, le=100)] = 5
    ) -> dict:
        image = decode_upload(await _read(file, max_upload_mb), server.draft_size)
        return await admission.run(server.predict, image, top_k)

    @app.post("/explain", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def explain(file: Annotated[UploadFile, File()], target: str | None = None) -> Response:
        image = decode_upload(await _read(file, max_upload_mb), server.draft_size)
        png = await admission.run(server.explain, image, target)
        return Response(png, media_type="image/png")

    return app
