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

import contextlib
import io
import json
import logging
import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data import ImageItem, discover, image_loader, make_splits
from ..errors import TlcvError
from ..io import sha256_file, write_json
from ..runs import MODEL_FILE, Run, load_run
from .engine import METADATA_PREFIX, OnnxEngine, require_onnxruntime

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


def _quiet():
    """The exporters print pages of progress and warnings; a CLI's stdout stays clean."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return stack


def export_graph(graph: InferenceGraph, path: Path, size: int, metadata: dict) -> str:
    """Write ``graph`` to ``path`` atomically with tlcv metadata; return the exporter used."""
    import onnx

    graph = graph.eval().to("cpu", memory_format=torch.contiguous_format)
    outputs = ["features"] if graph.head is None else ["logits", "features"]
    example = (torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8),)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    common = dict(input_names=["images"], output_names=outputs, opset_version=OPSET)
    exporter = "dynamo"
    try:
        with _quiet():
            torch.onnx.export(
                graph,
                example,
                str(tmp),
                dynamo=True,
                external_data=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                **common,
            )
    except Exception as exc:  # noqa: BLE001 - any dynamo failure: try the older exporter
        reason = (str(exc).strip().splitlines() or [repr(exc)])[0][:200]
        log.warning("dynamo ONNX exporter failed (%s); using the TorchScript exporter", reason)
        exporter = f"torchscript (dynamo failed: {reason})"
        axes = {name: {0: "batch"} for name in ["images", *outputs]}
        with _quiet():
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


def run_fingerprint(run: Run) -> str:
    """Identity of a run's weights: the graph exported from them carries it."""
    return sha256_file(run.path / MODEL_FILE)[:16]


def _check_exportable(run: Run) -> None:
    if run.is_sequence:
        raise TlcvError(
            "clip runs cannot be exported yet: their temporal head runs on packed "
            "variable-length frame sequences, which the exported graph does not cover",
            hint="use the torch engine for clip runs",
            path=str(run.path),
        )
    if run.info.get("strategy") == "classical":
        raise TlcvError(
            "a classical run (HOG / colour / LBP from scikit-image) is not a network; there is "
            "no graph to export",
            hint="export a run of the features, finetune or scratch strategies",
            path=str(run.path),
        )


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


def verification_items(run: Run, data: str | Path | None) -> tuple[list, list, str]:
    """(check items, calibration items, description): the run's validation and training
    images, rebuilt from its saved configuration; ``data`` replaces both when given."""
    if data is not None:
        items = discover(data).all_items()
        return items, items, f"all images under {data}"
    cfg = run.config
    root = cfg.get("data") or cfg.get("source")
    if not root or not Path(str(root)).exists():
        raise TlcvError(
            f"the run's data ({root}) is not on this machine, so the export cannot be checked",
            hint="pass --data DIR with labelled images of the run's classes",
            path=str(run.path),
        )
    splits = make_splits(
        discover(root),
        val_fraction=float(cfg.get("val_fraction", 0.15)),
        test_fraction=float(cfg.get("test_fraction", 0.2)),
        per_class=cfg.get("per_class"),
        seed=int(cfg.get("seed", 0)),
        split_seed=cfg.get("split_seed"),
    )
    check, what = (splits.val, "validation") if splits.val else (splits.test, "test")
    return check or splits.train, splits.train, f"the run's {what} images ({root})"


def uint8_batches(items: list[ImageItem], prep, batch_size: int = 32):
    """(items, uint8 array) batches through tlcv's own decoding (unreadable files skipped)."""
    for batch in image_loader(items, prep, batch_size, num_workers=0):
        if batch.indices:
            yield [items[i] for i in batch.indices], batch.images.numpy()


def _compare(graph: InferenceGraph, engines: dict[str, OnnxEngine], items, classes, prep):
    """Eager logits vs each engine's: max |diff|, top-1 agreement and accuracy per engine."""
    lookup = {c: i for i, c in enumerate(classes)}
    stats = {
        name: {"max_abs_logit_diff": 0.0, "agree": 0, "correct": 0} for name in ["torch", *engines]
    }
    n = labelled = 0
    for batch_items, images in uint8_batches(items, prep):
        with torch.inference_mode():
            eager = graph(torch.from_numpy(images))[0].numpy()
        labels = np.array([lookup.get(it.label, -1) for it in batch_items])
        mask = labels >= 0
        stats["torch"]["correct"] += int((eager.argmax(1) == labels)[mask].sum())
        for name, engine in engines.items():
            logits = engine.run(images, ["logits"])["logits"]
            s = stats[name]
            s["max_abs_logit_diff"] = max(
                s["max_abs_logit_diff"], float(np.abs(logits - eager).max())
            )
            s["agree"] += int((logits.argmax(1) == eager.argmax(1)).sum())
            s["correct"] += int((logits.argmax(1) == labels)[mask].sum())
        n += len(batch_items)
        labelled += int(mask.sum())
    out = {"images": n, "labelled": labelled}
    for name, s in stats.items():
        row = {"accuracy": s["correct"] / labelled if labelled else None}
        if name != "torch":
            row.update(max_abs_logit_diff=s["max_abs_logit_diff"], top1_agreement=s["agree"] / n)
        out[name] = row
    return out


def _calibration_reader(items, prep, limit: int, seed: int = 0):
    from onnxruntime.quantization import CalibrationDataReader

    picked = random.Random(seed).sample(items, min(limit, len(items)))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = (
                {"images": images} for _, images in uint8_batches(picked, prep, batch_size=16)
            )

        def get_next(self):
            return next(self.batches, None)

    return Reader()


def quantize_int8(src: Path, dst: Path, items, prep, calibration: int) -> None:
    """Static QDQ quantization (per-channel int8 weights, uint8 activations)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = dst.with_name(f".{dst.name}.pre.{os.getpid()}.onnx")
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with _quiet():
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
            quantize_static(
                str(pre),
                str(tmp),
                _calibration_reader(items, prep, calibration),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
        os.replace(tmp, dst)
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


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
    (also written as ``<file>.verify.json`` beside the file)."""
    require_onnxruntime()
    run = run if isinstance(run, Run) else load_run(run)
    _check_exportable(run)
    path = Path(out) if out else run.path / "export" / "model.onnx"
    model = run.load_model()
    graph = InferenceGraph(model.backbone, model.head).eval()
    prep = run.preprocessing
    meta = run_metadata(run)
    exporter = export_graph(graph, path, prep.input_size, meta)
    check_items, calib_items, described = verification_items(run, data)
    engines = {"onnxruntime_fp32": OnnxEngine(path)}
    report = {"file": str(path), "exporter": exporter, "checked_on": described, **meta}
    int8_path = path.with_name(path.stem + ".int8.onnx")
    if int8:
        quantize_int8(path, int8_path, calib_items, prep, calibration)
        engines["onnxruntime_int8"] = OnnxEngine(int8_path)
    report["verification"] = _compare(graph, engines, check_items, run.classes, prep)
    if int8:
        report.update(_int8_verdict(report["verification"], int8_path, max_drop))
    write_json(path.with_name(path.stem + ".verify.json"), report)
    if int8 and not report["int8_kept"]:
        raise TlcvError(
            f"int8 refused: {report['int8_reason']}",
            hint=f"the fp32 export is kept at {path}; try more --calibration images",
            path=str(path),
        )
    return report


def _int8_verdict(verification: dict, int8_path: Path, max_drop: float) -> dict:
    fp32 = verification["onnxruntime_fp32"]["accuracy"]
    q = verification["onnxruntime_int8"]["accuracy"]
    if fp32 is None or q is None:
        int8_path.unlink(missing_ok=True)
        return {"int8_kept": False, "int8_reason": "no labelled images to measure the drop on"}
    drop = 100.0 * (fp32 - q)
    kept = drop <= max_drop
    if not kept:
        int8_path.unlink(missing_ok=True)
    reason = (
        f"accuracy {100 * q:.2f}% vs fp32 {100 * fp32:.2f}% ({drop:+.2f} points drop; "
        f"limit {max_drop:g})"
    )
    return {
        "int8_file": str(int8_path) if kept else None,
        "int8_kept": kept,
        "int8_drop_points": round(drop, 3),
        "int8_reason": reason,
    }


def _encoder(path: Path, name: str, weights_id: str, prep, dim: int):
    from .engine import OnnxEncoder

    engine = OnnxEngine(path)
    graph_id = f"onnxruntime:{weights_id}:{sha256_file(path)[:16]}"
    return OnnxEncoder(engine, name, graph_id, prep, dim)


def run_encoder(run: Run):
    """The run's graph under ONNX Runtime, exported into RUN/export/ on first use (again when
    the run's weights changed since)."""
    require_onnxruntime()
    _check_exportable(run)
    path = run.path / "export" / "model.onnx"
    fingerprint = run_fingerprint(run)
    current = False
    if path.is_file():
        with contextlib.suppress(TlcvError):
            current = OnnxEngine(path).metadata.get("run_fingerprint") == fingerprint
    if not current:
        model = run.load_model()
        try:
            export_graph(
                InferenceGraph(model.backbone, model.head),
                path,
                run.preprocessing.input_size,
                run_metadata(run),
            )
        except OSError as exc:
            raise TlcvError(
                f"cannot write the ONNX graph into {path.parent}: {exc.strerror}",
                hint="export it elsewhere first with `tlcv export RUN --out FILE`, or make the "
                "run folder writable",
                path=str(path),
            ) from exc
    return _encoder(
        path, run.info["backbone"], fingerprint, run.preprocessing, run.info["feature_dim"]
    )


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
    return _encoder(path, backbone.name, backbone.weights_id, prep, backbone.feature_dim)
