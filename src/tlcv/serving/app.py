"""`tlcv serve`: a run behind FastAPI. The model is loaded once and shared; inference runs in
worker threads (never on the event loop), one at a time (torch already uses every core per
call, and the explainers' hooks must not see another request's forward pass).

Uploads are read into memory only (nothing is written to disk or kept), capped in size,
sniffed by decoding (the extension and the declared type are not trusted), and refused above
the decompression-bomb pixel limit; every bad request is a 4xx with a JSON ``detail``.
"""

from __future__ import annotations

import base64
import io
import threading
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from PIL import Image, ImageOps

from .._version import __version__
from ..data.decode import MAX_PIXELS
from ..runs import load_run
from .page import PAGE

MAX_UPLOAD_MB = 10
FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"}


def decode_upload(data: bytes) -> Image.Image:
    """An RGB image from uploaded bytes, or an HTTPException saying what is wrong."""
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
    """The run, its model and engine, and the lock that serialises inference."""

    def __init__(self, run_dir: str | Path, engine: str = "torch"):
        self.run = load_run(run_dir)
        self.engine = engine
        self.task = self.run.info.get("task") or "classification"
        self.lock = threading.Lock()
        if self.task not in ("classification", "segmentation", "detection"):
            from ..errors import TlcvError

            raise TlcvError(
                f"serving {self.task} runs is not supported yet",
                hint="serve an image classification or segmentation run",
            )
        if engine != "torch" and self.task != "classification":
            from ..errors import TlcvError

            raise TlcvError("--engine onnxruntime serves classification runs only")
        self.model = self.run.model()  # loaded once, shared by every request
        if engine != "torch":
            from ..deploy.export import run_encoder

            self.onnx = run_encoder(self.run, int8=engine.endswith("int8")).onnx

    def metadata(self) -> dict:
        info = self.run.info
        return {
            "run": self.run.path.name,
            "task": self.task,
            "classes": self.run.classes,
            "backbone": info["backbone"],
            "preprocessing": info["preprocessing"],
            "fingerprint": info.get("weights_sha256"),
            "engine": self.engine,
            "tlcv_version": __version__,
        }

    def _input(self, image: Image.Image) -> torch.Tensor:
        from ..data import eval_transform

        return eval_transform(self.run.preprocessing)(image)

    def predict(self, image: Image.Image, top_k: int) -> dict:
        if self.task == "segmentation":
            return self._segment(image)
        if self.task == "detection":
            return self._detect(image)[0]
        x = self._input(image)
        with self.lock:
            if self.engine == "torch":
                from ..data import normalize

                with torch.inference_mode():
                    batch = normalize(
                        x[None], self.model.backbone.preprocessing, torch.device("cpu")
                    )
                    probs = self.model(batch).softmax(1)[0].numpy()
            else:
                logits = self.onnx.run(x[None].numpy(), ["logits"])["logits"][0]
                probs = np.exp(logits - logits.max())
                probs /= probs.sum()
        order = np.argsort(-probs)[: max(1, min(top_k, len(probs)))]
        return {
            "top": [
                {"label": self.run.classes[int(i)], "score": round(float(probs[i]), 6)}
                for i in order
            ]
        }

    def _segment(self, image: Image.Image) -> dict:
        from ..tasks.segmentation.inference import class_scores, overlay, palette

        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
        with self.lock:
            mask = (
                class_scores(self.model, pixels, self.run.info["image_size"], torch.device("cpu"))
                .argmax(0)
                .numpy()
            )
        counts = np.bincount(mask.ravel(), minlength=len(self.run.classes))
        order = np.argsort(-counts)
        colours = palette(len(self.run.classes), self.run.info.get("mask_format"))
        return {
            "top": [
                {"label": self.run.classes[int(i)], "score": round(float(counts[i]) / mask.size, 6)}
                for i in order
                if counts[i]
            ],
            "overlay_png": _png_data(overlay(np.array(image), mask.astype(np.uint8), colours)),
        }

    def _detect(self, image: Image.Image, threshold: float = 0.5) -> tuple[dict, bytes]:
        """Objects above ``threshold`` (as bars: one per object) and the drawn image."""
        from ..tasks.detection.evaluate import detect, draw

        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
        with self.lock:
            found = detect(self.model, pixels, torch.device("cpu"))
        keep = found["scores"] >= threshold
        objects = [
            {
                "label": self.run.classes[int(c) - 1],
                "score": round(float(s), 6),
                "box": [round(float(v), 1) for v in box],
            }
            for box, c, s in zip(
                found["boxes"][keep], found["labels"][keep], found["scores"][keep], strict=True
            )
        ]
        return {"top": objects}, draw(pixels, found, self.run.classes, threshold=threshold)

    def explain(self, image: Image.Image, target: str | None) -> bytes:
        if self.task == "detection":
            return self._detect(image)[1]
        if self.task == "segmentation":
            return base64.b64decode(self._segment(image)["overlay_png"].split(",", 1)[1])
        from ..errors import TlcvError
        from ..interpret.pictures import Explanation, explain_tensors, picture

        x = self._input(image)
        with self.lock:
            try:
                ((heat, name, top),) = explain_tensors(self.run, [x], target=target)
            except TlcvError as exc:
                raise HTTPException(422, exc.message) from exc
        return picture(Explanation("upload", x.permute(1, 2, 0).numpy(), heat, name, top))


def _png_data(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


async def _read(file: UploadFile, limit_mb: float) -> bytes:
    limit = int(limit_mb * 1024 * 1024)
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"upload over the {limit_mb:g} MB limit")
    return data


def create_app(
    run_dir: str | Path, engine: str = "torch", max_upload_mb: float = MAX_UPLOAD_MB
) -> FastAPI:
    """The FastAPI app of one run (uvicorn serves it; tests drive it with TestClient)."""
    server = Server(run_dir, engine)
    app = FastAPI(
        title=f"tlcv: {server.run.path.name}",
        version=__version__,
        description="Predictions and explanations of one tlcv run.",
    )
    app.state.server = server

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/metadata")
    async def metadata() -> dict:
        return server.metadata()

    @app.post("/predict")
    async def predict(
        file: Annotated[UploadFile, File()], top_k: Annotated[int, Query(ge=1, le=100)] = 5
    ) -> dict:
        image = decode_upload(await _read(file, max_upload_mb))
        return await run_in_threadpool(server.predict, image, top_k)

    @app.post("/explain", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def explain(file: Annotated[UploadFile, File()], target: str | None = None) -> Response:
        image = decode_upload(await _read(file, max_upload_mb))
        png = await run_in_threadpool(server.explain, image, target)
        return Response(png, media_type="image/png")

    return app
