"""The high-level Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import DEFAULT_BACKBONE
from .config import TrainConfig

# torch, scikit-learn, Lightning and the models load inside the functions that use them, so
# `import tlcv` and the CLI's help stay fast (tests/test_startup.py).
if TYPE_CHECKING:
    from .features import FeatureSet
    from .runs import Run


def train(data: str | Path, out: str | Path, *, progress: bool = False, **options) -> Run | None:
    """Train a classifier for the images under ``data`` and write the run to ``out``.

    Options are TrainConfig's fields (``strategy="features"``, ``backbone=...``, ...).
    Returns the loaded run (None on non-zero torchrun ranks).
    """
    return _dispatch(TrainConfig.from_options(data=str(data), out=str(out), **options), progress)


def _dispatch(cfg: TrainConfig, progress: bool) -> Run | None:
    """The task (asked for, or what the data holds) picks the strategy's trainer."""
    from .tasks import task_for_data

    task = task_for_data(cfg.data, cfg.task, cfg)
    cfg.task = task.name
    task.prepare(cfg)
    return task.strategies.get(cfg.strategy)(cfg, progress=progress)


def resume(run: str | Path, *, progress: bool = False, **changed) -> Run | None:
    """Continue an interrupted run from its last finished epoch, with its saved configuration.

    Any option in ``changed`` that differs from the saved one is refused (a resumed run must be
    the run it claims to be); pass only what you typed again.
    """
    from .runs import interrupted_run_config

    run_dir = Path(run).expanduser()
    saved = interrupted_run_config(run_dir, "tlcv train")
    return _dispatch(TrainConfig.resumed(run_dir, saved, changed), progress)


def adapt(
    source: str | Path,
    target: str | Path,
    out: str | Path,
    *,
    method: str = "source-only",
    progress: bool = False,
    **options,
) -> Run | None:
    """Adapt from labelled ``source`` images to the unlabelled ``target`` and write a run.

    Options are AdaptConfig's fields (``mode="frozen"``, ``backbone=...``, ``select=...``).
    Target labels, if the target folder has class folders, are read only for the final score.
    """
    from .adaptation import adapt as run_adapt
    from .config import AdaptConfig

    cfg = AdaptConfig.from_options(
        source=str(source), target=str(target), out=str(out), method=method, **options
    )
    return run_adapt(cfg, progress)


def resume_adapt(run: str | Path, *, progress: bool = False) -> Run | None:
    """Continue an interrupted ``adapt`` run from its last finished epoch, as configured."""
    from .adaptation import adapt as run_adapt
    from .config import AdaptConfig
    from .runs import interrupted_run_config

    run_dir = Path(run).expanduser()
    saved = interrupted_run_config(run_dir, "tlcv adapt")
    return run_adapt(AdaptConfig.resumed(run_dir, saved), progress)


def extract(
    data: str | Path, backbone: str = DEFAULT_BACKBONE, *, progress: bool = False, **options
) -> FeatureSet:
    """Embeddings of every image under ``data``, computed once and then served from the cache.

    Options are ExtractConfig's fields (``weights``, ``cache``, ``engine="onnxruntime"``: the
    backbone as an ONNX graph, its features cached apart from torch's, ...). A re-run whose
    images are all cached is answered without importing torch (features.memo).
    """
    from .config import ExtractConfig
    from .features.folder import extract_folder

    cfg = ExtractConfig.from_options(data=str(data), backbone=backbone, **options).to_dict()
    return extract_folder(cfg.pop("data"), cfg.pop("backbone"), progress=progress, **cfg)


def _run(run: str | Path | Run) -> Run:
    from .runs import Run, load_run

    return run if isinstance(run, Run) else load_run(run)


def evaluate(run: str | Path | Run, data: str | Path, *, progress: bool = False, **options) -> dict:
    """Score every labelled image (or clip) under ``data`` (all splits) with a saved run.

    Options are EvaluateConfig's fields: ``out`` (default RUN/eval/<data folder name>),
    ``engine`` ("onnxruntime": the run's exported graph, exported into RUN/export/ on first
    use; "onnxruntime-int8": the quantized graph `tlcv export --int8` kept), ``prefix`` (clip
    runs: each clip's first K frames), ``window`` (segmentation: overlapping N-pixel squares),
    ``explain`` (maps of the N surest errors), ... The run's task writes its files: metrics,
    per-class table, confusion matrix (classification); mIoU and overlays (segmentation);
    mAP, per-class AP and a precision-recall plot (detection).
    """
    from .config import EvaluateConfig
    from .tasks import task_of_run

    cfg = EvaluateConfig.from_options(data=str(data), **options)
    loaded = _run(run)
    return task_of_run(loaded).evaluate(
        loaded, data, out=cfg.out, cache=cfg.cache, batch_size=cfg.batch_size,
        num_workers=cfg.num_workers, device=cfg.device, strict=cfg.strict, progress=progress,
        prefix=cfg.prefix, engine=cfg.engine, bootstrap=cfg.bootstrap, **cfg.task_options(),
    )  # fmt: skip


def predict(run: str | Path | Run, paths: list[str | Path], **options) -> list[dict]:
    """Top-k classes for each image or clip (clip runs add ``steps``); unreadable inputs get
    an ``error`` instead. Segmentation runs: a mask and an overlay PNG per image (``masks=``
    FOLDER, default RUN/predictions) and the class fractions; detection runs: the boxes.

    Options are PredictConfig's fields. Features stay in memory (a shard written and fsynced
    per call costs more than the features of a few images) unless ``cache`` names a folder.
    """
    from .config import PredictConfig
    from .tasks import task_of_run

    cfg = PredictConfig.from_options(**options)
    if isinstance(run, (str, Path)) and cfg.engine.startswith("onnxruntime"):
        from .deploy.runtime import open_graph_run
        from .deploy.runtime import predict as graph_predict

        if open_graph_run(run).task.torch_free:  # the graph alone answers: torch never loads
            given = dict(top_k=cfg.top_k, batch_size=cfg.batch_size, strict=cfg.strict)
            return graph_predict(run, paths, engine=cfg.engine, **given, **cfg.task_options())
    loaded = _run(run)
    return task_of_run(loaded).predict(
        loaded, paths, top_k=cfg.top_k, cache=False if cfg.cache is None else cfg.cache,
        batch_size=cfg.batch_size, num_workers=cfg.num_workers, device=cfg.device,
        strict=cfg.strict, prefix=cfg.prefix, engine=cfg.engine, **cfg.task_options(),
    )  # fmt: skip


def explain(
    run: str | Path | Run, paths: list[str | Path], out: str | Path, **options
) -> list[dict]:
    """Class-activation maps of a classification run's images, saved as PNGs in ``out`` (one
    per image, image | overlay, top-k classes in the title; a grid for several). Options are
    ExplainConfig's fields (``method``, ``target``: the class the maps are for, default each
    image's top class, ``top_k``)."""
    from .config_deploy import ExplainConfig
    from .tasks import task_of_run

    cfg = ExplainConfig.from_options(out=str(out), **options).to_dict()
    loaded = _run(run)
    return task_of_run(loaded).explain(loaded, paths, cfg.pop("out"), **cfg)


def serve(run: str | Path, **options) -> None:
    """Serve a run until interrupted: GET / (the page), POST /predict, POST /explain,
    GET /healthz, GET /metadata, OpenAPI docs at /docs. Options are ServeConfig's fields."""
    import uvicorn

    from .config_deploy import ServeConfig
    from .serving.access import check_binding
    from .serving.app import create_app
    from .serving.limits import header_timeout_protocol

    cfg = ServeConfig.from_options(**options)
    api_key = cfg.api_key or os.environ.get("TLCV_API_KEY") or None
    check_binding(cfg.host, api_key, cfg.insecure)
    app = create_app(
        run, engine=cfg.engine, max_upload_mb=cfg.max_upload_mb, body_timeout=cfg.body_timeout,
        api_key=api_key, max_pending=cfg.max_pending, request_timeout=cfg.request_timeout,
    )  # fmt: skip
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level="warning",
        http=header_timeout_protocol(cfg.header_timeout),
        limit_concurrency=cfg.max_connections,
        timeout_keep_alive=5,
    )


def export(run: str | Path, **options) -> dict:
    """Export a classification run as one ONNX file (+ ``int8`` quantized copy), checked against
    eager PyTorch on the run's validation images; returns the verification report. Options are
    ExportConfig's fields."""
    from .config_deploy import ExportConfig
    from .deploy import export_run

    cfg = ExportConfig.from_options(**options).to_dict()
    cfg.pop("format")  # onnx, the only format so far
    return export_run(run, **cfg)


def report(paths: list[str | Path], out: str | Path) -> tuple[Path, Path]:
    """One self-contained HTML report of runs and experiments, plus its Markdown twin."""
    from .reporting import build_report

    return build_report([Path(p) for p in paths], Path(out))
