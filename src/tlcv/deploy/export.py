"""`tlcv export`: a run (or a bare backbone) as one ONNX file that runs without tlcv or torch.

The graph takes uint8 RGB images (B, 3, S, S) resized and centre-cropped as the metadata says
(the normalisation is inside), and returns ``logits`` and ``features``; the batch axis is
dynamic. torch's dynamo exporter is tried first, the TorchScript exporter is the fallback (and
the report says so). After export the file is checked against eager PyTorch on the run's
validation images; ``int8`` adds a statically quantized copy (ONNX Runtime's QDQ tooling,
calibrated on training images) that is refused when it costs more than ``max_drop`` points of
validation accuracy.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from torch import nn

from .._version import __version__
from ..errors import TlcvError
from ..io import sha256_file, write_json
from ..runinfo import weights_fingerprint
from ..runs import Run, load_run
from .engine import METADATA_PREFIX, OnnxEngine, quiet, require_onnxruntime
from .graphs import check_exportable, record_graph, trusted_engine
from .verify import compare, int8_verdict, quantize_int8, verification_items

log = logging.getLogger("tlcv")
OPSET = 18
RESIZE_RULE = "resize the short side to resize_size (antialiased), centre-crop input_size"


class InferenceGraph(nn.Module):
    """uint8 images -> (logits, features), normalisation included; features only without a
    head (a bare backbone for `tlcv extract --engine onnxruntime`)."""

    def __init__(self, backbone: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head
        prep = backbone.preprocessing
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor):
        features = self.backbone((images.float() - self.mean) / self.std)
        if self.head is None:
            return features
        return self.head(features), features


def export_graph(
    graph: nn.Module,
    path: Path,
    size: int,
    metadata: dict,
    outputs: list[str] | None = None,
    spatial: int = 0,
    output_axes: dict | None = None,
) -> str:
    """Write an image graph to ``path`` (uint8 (B, 3, S, S) in); return the exporter used.
    ``outputs`` names what the graph returns (default: an InferenceGraph's); ``spatial``: the
    image's height and width are dynamic too, in multiples of it (dense tasks);
    ``output_axes``: the outputs' dynamic axes when they are not the input's (detections:
    one image in, any number of boxes out, traced by the TorchScript exporter only)."""
    if outputs is None:
        outputs = ["features"] if graph.head is None else ["logits", "features"]
    batch = 1 if output_axes else 2
    shape = (batch, 3, size, size + spatial) if spatial else (batch, 3, size, size)
    dims: dict = {0: torch.export.Dim("batch", min=1)}
    axes: dict = {0: "batch"}
    if spatial:
        dims.update({2: spatial * torch.export.Dim("h", min=1, max=256),
                     3: spatial * torch.export.Dim("w", min=1, max=256)})  # fmt: skip
        axes.update({2: "height", 3: "width"})
    named = {"images": axes, **(output_axes or {name: axes for name in outputs})}
    return write_onnx(graph, path, shape, metadata, outputs, dims, named,
                      dynamo=not output_axes)  # fmt: skip


def write_onnx(
    graph: nn.Module,
    path: Path,
    shape: tuple[int, ...],
    metadata: dict,
    outputs: list[str],
    dims: dict,
    axes: dict,
    dynamo: bool = True,
) -> str:
    """Export ``graph`` (one uint8 input ``images`` of ``shape``) atomically with tlcv metadata:
    torch's dynamo exporter with ``dims`` (torch.export dims of the input), else TorchScript's
    with ``axes`` (dynamic axes per input and output name). Returns the exporter used."""
    import onnx

    graph = graph.eval().to("cpu", memory_format=torch.contiguous_format)
    example = (torch.randint(0, 256, shape, dtype=torch.uint8),)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    common = dict(input_names=["images"], output_names=outputs, opset_version=OPSET)
    exporter = "dynamo" if dynamo else "torchscript"
    try:
        if dynamo:
            with quiet():
                torch.onnx.export(graph, example, str(tmp), dynamo=True, external_data=False,
                                  dynamic_shapes=(dims,), **common)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any dynamo failure: try the older exporter
        reason = (str(exc).strip().splitlines() or [repr(exc)])[0][:200]
        log.warning("dynamo ONNX exporter failed (%s); using TorchScript's", reason)
        exporter, dynamo = f"torchscript (dynamo failed: {reason})", False
    if not dynamo:
        with quiet():
            torch.onnx.export(graph, example, str(tmp), dynamo=False, dynamic_axes=axes, **common)
    try:
        model = onnx.load(str(tmp))
        for key, value in {**metadata, "exporter": exporter}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = METADATA_PREFIX + key, json.dumps(value)
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return exporter


def checked_export(run: Run, out, data, *, discover, kind: str, limit: int, write, metadata: dict,
                   compare, summary) -> dict:  # fmt: skip
    """A task's `tlcv export`: its graph written (``write(run, path)``) and recorded, then
    ``compare(run, engine, items)`` against eager torch on the run's items (``discover(root)``
    -> {split: items}, val first), the report and its one-line ``summary(check)`` written
    beside the graph as ``<file>.verify.json``."""
    root = data or run.config.get("data") or run.config.get("source")  # adapted runs: source
    if not root or not Path(str(root)).exists():
        raise TlcvError(
            f"the run's data ({root}) is not on this machine, so the export cannot be checked",
            hint=f"pass --data DIR with {kind} like the run's",
            path=str(run.path),
        )
    name, found = next(((n, i) for n, i in discover(root).items() if i), ("no", []))
    items = found[:limit]
    described = f"{len(items)} {name} {kind} of {root}"
    path = Path(out) if out else run.path / "export" / "model.onnx"
    exporter = write(run, path)
    digest = record_graph(run, path)
    report = {"file": str(path), "sha256": digest, "exporter": exporter, "checked_on": described,
              **metadata}  # fmt: skip
    check = report["verification"] = compare(run, OnnxEngine(path), items)
    report["summary"] = f"checked on {described}: {summary(check)}"
    write_json(path.with_name(path.stem + ".verify.json"), report)
    return report


def run_fingerprint(run: Run) -> str:
    """Identity of a run's weights: the graph exported from them carries it."""
    return weights_fingerprint(run.path)


def run_metadata(run: Run) -> dict:
    return {
        "classes": run.classes,
        "preprocessing": {**run.info["preprocessing"], "resize_rule": RESIZE_RULE},
        "input": "uint8 RGB (batch, 3, input_size, input_size), channels first",
        "outputs": {"logits": "class scores (softmax -> probabilities)", "features": "embedding"},
        "backbone": run.info["backbone"],
        "run_fingerprint": run_fingerprint(run),
        "tlcv_version": __version__,
        "opset": OPSET,
    }


def export_run(
    run: str | Path | Run,
    *,
    out: str | Path | None = None,
    int8: bool = False,
    data: str | Path | None = None,
    calibration: int = 128,
    max_drop: float = 1.0,
) -> dict:
    """Export a classification run to ONNX, check it, optionally quantize; return the report
    (also written as ``<file>.verify.json`` beside the file). A task whose graph answers
    otherwise exports itself (its package's ``export.export_run``)."""
    from ..tasks import task_of_run

    require_onnxruntime()
    run = run if isinstance(run, Run) else load_run(run)
    check_exportable(run)
    own = task_of_run(run).own("export", "export_run")
    if own is not None:
        return own(run, out=out, int8=int8, data=data)
    path = Path(out) if out else run.path / "export" / "model.onnx"
    model = run.load_model()
    graph = InferenceGraph(model.backbone, model.head).eval()
    prep = run.preprocessing
    meta = run_metadata(run)
    exporter = export_graph(graph, path, prep.input_size, meta)
    digest = record_graph(run, path)
    check_items, calib_items, described = verification_items(run, data)
    engines = {"onnxruntime_fp32": OnnxEngine(path)}
    report = {
        "file": str(path),
        "sha256": digest,
        "exporter": exporter,
        "checked_on": described,
        **meta,
    }
    int8_path = path.with_name(path.stem + ".int8.onnx")
    if int8:
        quantize_int8(path, int8_path, calib_items, prep, calibration)
        engines["onnxruntime_int8"] = OnnxEngine(int8_path)
    report["verification"] = compare(graph, engines, check_items, run.classes, prep)
    if int8:
        report.update(int8_verdict(report["verification"], int8_path, max_drop))
        if report["int8_kept"]:
            report["int8_sha256"] = record_graph(run, int8_path)
    write_json(path.with_name(path.stem + ".verify.json"), report)
    if int8 and not report["int8_kept"]:
        raise TlcvError(
            f"int8 refused: {report['int8_reason']}",
            hint=f"the fp32 export is kept at {path}; try more --calibration images",
            path=str(path),
        )
    return report


def _encoder(engine: OnnxEngine, name: str, weights_id: str, prep, dim: int):
    from .engine import OnnxEncoder

    digest = engine.sha256 or sha256_file(engine.path)
    graph_id = f"onnxruntime:{weights_id}:{digest[:16]}"
    return OnnxEncoder(engine, name, graph_id, prep, dim)


def run_encoder(run: Run, int8: bool = False):
    """The run's graph under ONNX Runtime, exported into RUN/export/ on first use (again when
    the run's weights changed since). ``int8``: the quantized copy `tlcv export --int8` kept.
    Only a graph whose SHA-256 model.json recorded is run (deploy/graphs.py). The session is
    kept on the Run object, so repeated predictions reuse it."""
    key = "onnxruntime-int8-encoder" if int8 else "onnxruntime-encoder"
    if key not in run.loaded:
        run.loaded[key] = _load_run_encoder(run, int8)
    return run.loaded[key]


def write_graph(run: Run, path: Path) -> str:
    """Write the run's graph to ``path`` (the task's own graph, or a classifier's); return the
    exporter used."""
    from ..tasks import task_of_run

    own = task_of_run(run).own("export", "write_graph")
    if own is not None:
        return own(run, path)
    model = run.load_model()
    graph = InferenceGraph(model.backbone, model.head)
    return export_graph(graph, path, run.preprocessing.input_size, run_metadata(run))


def write_run_graph(run_dir: Path, path: Path) -> None:
    """Export the run at ``run_dir`` into ``path`` on first use and record its digest (the
    torch-free engine's one step that imports torch)."""
    run = load_run(run_dir)
    try:
        write_graph(run, path)
    except OSError as exc:
        raise TlcvError(
            f"cannot write the ONNX graph into {path.parent}: {exc.strerror}",
            hint="export it elsewhere first with `tlcv export RUN --out FILE`, or make the "
            "run folder writable",
            path=str(path),
        ) from exc
    record_graph(run, path)


def _load_run_encoder(run: Run, int8: bool):
    require_onnxruntime()
    check_exportable(run)
    path = run.path / "export" / "model.onnx"
    fingerprint = run_fingerprint(run)
    size = run.preprocessing.input_size
    outputs = {"logits": len(run.classes), "features": int(run.info["feature_dim"])}
    describe = (run.info["backbone"], fingerprint, run.preprocessing, run.info["feature_dim"])
    if int8:
        path = path.with_name("model.int8.onnx")
        engine = trusted_engine(run, path, fingerprint, outputs, size)
        if engine is None:
            raise TlcvError(
                f"{run.path} has no int8 graph of its current weights",
                hint=f"run `tlcv export {run.path} --int8` first (it checks the accuracy cost)",
                path=str(path),
            )
        return _encoder(engine, *describe)
    engine = trusted_engine(run, path, fingerprint, outputs, size)
    if engine is None:
        write_run_graph(run.path, path)
        run.info = load_run(run.path).info  # model.json now records the graph
        engine = trusted_engine(run, path, fingerprint, outputs, size)
    return _encoder(engine, *describe)


def backbone_encoder(backbone, cache_dir: str | Path | None):
    """A bare backbone (for `tlcv extract`) under ONNX Runtime, exported once into the cache."""
    from ..features import default_cache_dir
    from ..io import fingerprint as fingerprint_of

    require_onnxruntime()
    if backbone.spec.family == "classical":
        raise TlcvError(
            f"{backbone.name} is computed by scikit-image, not a network: no ONNX graph",
            hint="use --engine torch for classical features",
        )
    prep = backbone.preprocessing
    key = fingerprint_of([backbone.weights_id, prep.to_dict(), OPSET, __version__])
    name = backbone.name.replace(":", "_").replace("/", "_")
    path = Path(cache_dir or default_cache_dir()).expanduser() / "onnx" / f"{name}-{key}.onnx"
    if not path.is_file():
        meta = {
            "backbone": backbone.name,
            "weights_id": backbone.weights_id,
            "preprocessing": {**prep.to_dict(), "resize_rule": RESIZE_RULE},
            "tlcv_version": __version__,
            "opset": OPSET,
        }
        export_graph(InferenceGraph(backbone), path, prep.input_size, meta)
    return _encoder(
        OnnxEngine(path), backbone.name, backbone.weights_id, prep, backbone.feature_dim
    )
