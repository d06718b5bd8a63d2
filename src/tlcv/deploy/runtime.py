"""`--engine onnxruntime` without torch: a finished run answered by its exported graph alone.

`tlcv predict` and `tlcv serve` with an ONNX Runtime engine open the run folder's JSON files
(runinfo.py), check the recorded graph (deploy/graphs.py) and decode and resize with Pillow
and numpy, so neither torch nor torchvision is imported (the process stays near 150 MB instead
of 1.2 GB, and starts in a fraction of the time). Only a run without its graph yet imports
torch, once, to export it. What an answer holds is the task's: a task package whose answers
differ from a classifier's has a ``runtime.py`` (``graph_spec``, ``predict``, ``answer``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import BadImageError, TlcvError
from ..evaluation.binary import verdict
from ..runinfo import MODEL_FILE, read_run_info, weights_fingerprint
from .engine import OnnxEngine, require_onnxruntime
from .graphs import check_exportable, trusted_engine

INTERPOLATION = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                 "nearest": Image.Resampling.NEAREST}  # fmt: skip
GRAPH_FILES = {False: "model.onnx", True: "model.int8.onnx"}


class GraphRun:
    """A run folder opened for ONNX Runtime: model.json, classes and the task; ``engine``
    is its checked graph. ``path`` and ``info`` are what deploy/graphs.py reads of a run."""

    def __init__(self, path: Path, info: dict, classes: list[str]):
        from ..tasks import task_of_info

        self.path, self.info, self.classes = path, info, classes
        self.task = task_of_info(info)
        self.loaded: dict = {}

    @property
    def preprocessing(self) -> dict:
        return self.info["preprocessing"]

    def own(self, function: str):
        """The task's own ``runtime.function``, or None (the classifier's way)."""
        return self.task.own("runtime", function)

    def engine(self, int8: bool = False) -> OnnxEngine:
        """The run's recorded graph under ONNX Runtime, kept for the next call."""
        key = f"engine-{int8}"
        if key not in self.loaded:
            self.loaded[key] = self._open_graph(int8)
        return self.loaded[key]

    def _open_graph(self, int8: bool) -> OnnxEngine:
        require_onnxruntime()
        check_exportable(self)
        path = self.path / "export" / GRAPH_FILES[int8]
        outputs, size = (self.own("graph_spec") or graph_spec)(self)
        fingerprint = weights_fingerprint(self.path)
        engine = trusted_engine(self, path, fingerprint, outputs, size)
        if engine is None and int8:
            raise TlcvError(
                f"{self.path} has no int8 graph of its current weights",
                hint=f"run `tlcv export {self.path} --int8` first (it checks the accuracy cost)",
                path=str(path),
            )
        if engine is None:  # the one step that needs torch: writing the graph
            from .export import write_run_graph

            write_run_graph(self.path, path)
            self.info = read_run_info(self.path)[0]  # model.json now records the graph
            engine = trusted_engine(self, path, fingerprint, outputs, size)
        return engine


def graph_spec(run: GraphRun) -> tuple[dict[str, int | None], int | None]:
    """A classifier graph's outputs (name -> width) and its fixed input size."""
    outputs = {"logits": len(run.classes), "features": int(run.info["feature_dim"])}
    return outputs, int(run.preprocessing["input_size"])


_OPENED: dict[str, tuple[tuple, GraphRun]] = {}


def _stamp(file: Path) -> tuple:
    try:
        stat = file.stat()
    except FileNotFoundError:
        return ()
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def open_graph_run(run_dir: str | Path) -> GraphRun:
    """The run at ``run_dir``, opened once per process while its model.json, weights and
    graphs stay the same (a warm `predict` call does not hash the weights or load the session
    again; a graph replaced on disk is checked again before it runs)."""
    path = Path(run_dir).expanduser()
    info, classes = read_run_info(path)
    key = str(path.resolve())
    graphs = [path / "export" / name for name in GRAPH_FILES.values()]
    stamp = tuple(_stamp(f) for f in (path / "model.json", path / MODEL_FILE, *graphs))
    held = _OPENED.get(key)
    if held is None or held[0] != stamp:
        _OPENED[key] = (stamp, GraphRun(path, info, classes))
    return _OPENED[key][1]


def short_side_resize(image: Image.Image, size: int, interpolation: str) -> Image.Image:
    """The short side to ``size``, the long side scaled and truncated (torchvision's rule)."""
    width, height = image.size
    if width <= height:
        target = (size, max(1, int(size * height / width)))
    else:
        target = (max(1, int(size * width / height)), size)
    if target == (width, height):
        return image
    return image.resize(target, INTERPOLATION.get(interpolation, Image.Resampling.BILINEAR))


def classifier_pixels(image: Image.Image, prep: dict) -> np.ndarray:
    """uint8 (3, S, S): short side to resize_size, centre-crop input_size, as training saw."""
    image = short_side_resize(image, int(prep["resize_size"]), prep.get("interpolation", ""))
    crop = int(prep["input_size"])
    left = int(round((image.width - crop) / 2.0))
    top = int(round((image.height - crop) / 2.0))
    square = image.crop((left, top, left + crop, top + crop))
    return np.asarray(square, dtype=np.uint8).transpose(2, 0, 1)


def _taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows (or columns) and weights of a half-pixel bilinear resize."""
    source = np.maximum((np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5, 0.0)
    low = np.minimum(source.astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (source - low).astype(np.float32)


def resize_bilinear(scores: np.ndarray, height: int, width: int) -> np.ndarray:
    """(K, h, w) -> (K, height, width), as torch's bilinear interpolate with
    align_corners=False computes it (the torch engines' step): both draw one mask or map."""
    low, high, weight = _taps(scores.shape[1], height)
    rows = scores[:, low] * (1 - weight)[None, :, None] + scores[:, high] * weight[None, :, None]
    low, high, weight = _taps(scores.shape[2], width)
    return rows[:, :, low] * (1 - weight) + rows[:, :, high] * weight


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def top_classes(run: GraphRun, probs: np.ndarray, top_k: int) -> list[dict]:
    order = np.argsort(-probs)[: max(1, min(top_k, len(probs)))]
    return [{"label": run.classes[int(i)], "score": round(float(probs[i]), 6)} for i in order]


def read_inputs(run: GraphRun, paths: list[str | Path], strict: bool, draft: bool = True):
    """(path, RGB image or None, error or None) per input the task collects; ``draft``: a
    JPEG may decode at a reduced scale still >= the size it is resized to (as tlcv's
    classifier loader does)."""
    from ..data.decode import open_rgb

    items = run.task.collect(paths)
    if not items:
        raise TlcvError("no images found in the given paths", hint="give image files or folders")
    draft = (int(run.preprocessing.get("resize_size") or 0) or None) if draft else None
    for item in items:
        try:
            yield item.path, open_rgb(item.path, draft), None
        except BadImageError as exc:
            if strict:
                raise TlcvError(f"{item.path}: {exc.message}", path=item.path) from exc
            yield item.path, None, exc.message


def predict(run_dir: str | Path, paths: list[str | Path], **options) -> list[dict]:
    """`tlcv predict --engine onnxruntime[-int8]`, torch-free: the task's own answers, or a
    classifier's top-k classes per image (unreadable inputs get an ``error``)."""
    run = open_graph_run(run_dir)
    own = run.own("predict")
    if own is not None:
        return own(run, paths, **options)
    engine = run.engine(int8=options.get("engine", "").endswith("int8"))
    answers, batch, where = [], [], []
    for path, image, error in read_inputs(run, paths, bool(options.get("strict"))):
        if image is None:
            answers.append({"path": path, "error": error})
            continue
        where.append(len(answers))
        answers.append({"path": path})
        batch.append(classifier_pixels(image, run.preprocessing))
    size = max(1, int(options.get("batch_size") or 32))
    for start in range(0, len(batch), size):
        logits = engine.run(np.stack(batch[start : start + size]), ["logits"])["logits"]
        for index, row in zip(where[start : start + size], softmax(logits), strict=True):
            answers[index].update(verdict(run, row, int(options.get("top_k") or 5)))
    return answers


def answer(server, image: Image.Image, top_k: int) -> dict:
    """POST /predict of a classifier served by ONNX Runtime: its top classes. One call per
    core at once (``server.slots``): an ONNX Runtime session runs concurrent calls safely."""
    pixels = classifier_pixels(image, server.run.preprocessing)
    with server.slots:
        logits = server.onnx.run(pixels[None], ["logits"])["logits"][0]
    return verdict(server.run, softmax(logits), top_k)
