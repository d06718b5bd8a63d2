"""The high-level Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

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

    requested = cfg.task or ("clip-classification" if cfg.temporal else None)
    task = task_for_data(cfg.data, requested)
    cfg.task = task.name
    if task.name == "clip-classification" and cfg.temporal is None:
        cfg.temporal = "lstm"
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
    data: str | Path,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: str = "imagenet",
    image_size: int | None = None,
    cache: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str = "auto",
    strict: bool = False,
    progress: bool = False,
    engine: str = "torch",
) -> FeatureSet:
    """Embeddings of every image under ``data``, computed once and then served from the cache.

    ``engine="onnxruntime"`` runs the backbone as an ONNX graph (exported once into the cache;
    its features are cached apart from torch's). A re-run whose images are all cached is
    answered without importing torch (features.memo).
    """
    from .features.folder import extract_folder

    return extract_folder(
        data, backbone, weights=weights, image_size=image_size, cache=cache,
        batch_size=batch_size, num_workers=num_workers, device=device, strict=strict,
        progress=progress, engine=engine,
    )  # fmt: skip


def _run(run: str | Path | Run) -> Run:
    from .runs import Run, load_run

    return run if isinstance(run, Run) else load_run(run)


def evaluate(
    run: str | Path | Run,
    data: str | Path,
    *,
    out: str | Path | None = None,
    cache: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str = "auto",
    strict: bool = False,
    progress: bool = False,
    prefix: int | None = None,
    engine: str = "torch",
    **task_options,
) -> dict:
    """Score every labelled image (or clip) under ``data`` (all splits) with a saved run.

    ``prefix`` (clip runs): use only each clip's first K frames. ``engine``: "torch",
    "onnxruntime" (the run's exported graph, exported into RUN/export/ on first use) or
    "onnxruntime-int8" (the quantized graph `tlcv export --int8` kept).
    Writes metrics.json, per_class.csv, predictions.csv and confusion.png to ``out``
    (default: RUN/eval/<data folder name>). Segmentation runs: mIoU, per-class IoU, overlay
    panels; ``window=N`` predicts large images in overlapping N-pixel squares.
    """
    from .tasks import task_of_run

    loaded = _run(run)
    return task_of_run(loaded).evaluate(
        loaded, data, out=out, cache=cache, batch_size=batch_size, num_workers=num_workers,
        device=device, strict=strict, progress=progress, prefix=prefix, engine=engine,
        **task_options,
    )  # fmt: skip


def predict(
    run: str | Path | Run,
    paths: list[str | Path],
    *,
    top_k: int = 5,
    cache: str | Path | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str = "auto",
    strict: bool = False,
    prefix: int | None = None,
    engine: str = "torch",
    **task_options,
) -> list[dict]:
    """Top-k classes for each image or clip; unreadable inputs get an ``error`` instead.
    Segmentation runs: a mask and an overlay PNG per image (``out=FOLDER``, default
    RUN/predictions) and the class fractions.

    Features stay in memory (a shard written and fsynced per call costs more than the
    features of a few images) unless ``cache`` names a folder. Clip runs add ``steps``.
    """
    from .tasks import task_of_run

    loaded = _run(run)
    return task_of_run(loaded).predict(
        loaded, paths, top_k=top_k, cache=False if cache is None else cache,
        batch_size=batch_size, num_workers=num_workers, device=device, strict=strict,
        prefix=prefix, engine=engine, **task_options,
    )  # fmt: skip


def explain(
    run: str | Path | Run,
    paths: list[str | Path],
    out: str | Path,
    *,
    method: str = "gradcam",
    target: str | None = None,
    top_k: int = 3,
) -> list[dict]:
    """Class-activation maps of a classification run's images, saved as PNGs in ``out`` (one
    per image, image | overlay, top-k classes in the title; a grid for several). ``target``:
    the class the maps are for (default: each image's top class)."""
    from .interpret.pictures import explain_run

    return explain_run(_run(run), paths, out, method=method, target=target, top_k=top_k)


def serve(
    run: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    engine: str = "torch",
    max_upload_mb: float = 10,
) -> None:
    """Serve a run until interrupted: GET / (the page), POST /predict, POST /explain,
    GET /healthz, GET /metadata, OpenAPI docs at /docs."""
    import uvicorn

    from .serving.app import create_app

    app = create_app(run, engine=engine, max_upload_mb=max_upload_mb)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def export(
    run: str | Path,
    *,
    out: str | Path | None = None,
    int8: bool = False,
    data: str | Path | None = None,
    calibration: int = 128,
    max_drop: float = 1.0,
) -> dict:
    """Export a classification run as one ONNX file (+ ``int8`` quantized copy), checked against
    eager PyTorch on the run's validation images; returns the verification report."""
    from .deploy import export_run

    return export_run(
        run, out=out, int8=int8, data=data, calibration=calibration, max_drop=max_drop
    )


def report(paths: list[str | Path], out: str | Path) -> tuple[Path, Path]:
    """One self-contained HTML report of runs and experiments, plus its Markdown twin."""
    from .reporting import build_report

    return build_report([Path(p) for p in paths], Path(out))
