"""The high-level Python API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .catalog import DEFAULT_BACKBONE
from .config import TrainConfig
from .data.decode import IMAGE_SUFFIXES, ImageItem, file_identity
from .errors import TlcvError
from .io import write_json, write_text

# torch, scikit-learn, Lightning and the models load inside the functions that use them, so
# `import tlcv` and the CLI's help stay fast (tests/test_startup.py).
if TYPE_CHECKING:
    import numpy as np

    from .features import FeatureSet
    from .runs import Run


def train(data: str | Path, out: str | Path, *, progress: bool = False, **options) -> Run | None:
    """Train a classifier for the images under ``data`` and write the run to ``out``.

    Options are TrainConfig's fields (``strategy="features"``, ``backbone=...``, ...).
    Returns the loaded run (None on non-zero torchrun ranks).
    """
    valid = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TlcvError(
            f"unknown option(s): {', '.join(unknown)}", hint=f"valid: {', '.join(sorted(valid))}"
        )
    cfg = TrainConfig(data=str(data), out=str(out), **options)
    return _dispatch(cfg, progress)


def _dispatch(cfg: TrainConfig, progress: bool) -> Run | None:
    """Clips (video files, frame folders) train a temporal model; images a classifier."""
    from .strategies import get_strategy
    from .video import is_video_data

    if cfg.temporal is None and is_video_data(cfg.data):
        cfg.temporal = "lstm"
    if cfg.temporal is not None:
        from .strategies.sequence import train_sequence

        return train_sequence(cfg, progress)
    return get_strategy(cfg.strategy)(cfg, progress=progress)


def resume(run: str | Path, *, progress: bool = False, **changed) -> Run | None:
    """Continue an interrupted run from its last finished epoch, with its saved configuration.

    Any option in ``changed`` that differs from the saved one is refused (a resumed run must be
    the run it claims to be); pass only what you typed again.
    """
    import yaml

    run_dir = Path(run).expanduser()
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise TlcvError(
            f"{run_dir} is not a tlcv run folder (no config.yaml)",
            path=str(run_dir),
            hint="give the --out folder of the interrupted `tlcv train`",
        )
    if (run_dir / "model.json").is_file():
        raise TlcvError(
            f"{run_dir} already finished",
            path=str(run_dir),
            hint="evaluate or predict with it; nothing to resume",
        )
    saved = yaml.safe_load(config_file.read_text()) or {}
    saved.pop("resolved", None)
    valid = {f.name for f in fields(TrainConfig)}
    differ = sorted(
        k
        for k, v in changed.items()
        if k in valid and k not in ("resume", "progress") and saved.get(k) != v
    )
    if differ:
        detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {changed[k]!r}" for k in differ)
        raise TlcvError(
            f"refusing to resume with a changed configuration ({detail})",
            hint="drop those flags to resume as saved, or start a new run",
        )
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in valid})
    # Resume writes where it is pointed: a copied run folder never rewrites its original.
    cfg.out, cfg.resume = str(run_dir), str(run_dir)
    return _dispatch(cfg, progress)


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
    from .adaptation import AdaptConfig
    from .adaptation import adapt as run_adapt
    from .adaptation.config import ADAPT_KEYS

    unknown = sorted(set(options) - ADAPT_KEYS)
    if unknown:
        raise TlcvError(
            f"unknown option(s): {', '.join(unknown)}",
            hint=f"valid: {', '.join(sorted(ADAPT_KEYS))}",
        )
    cfg = AdaptConfig(
        source=str(source), target=str(target), out=str(out), method=method, **options
    )
    return run_adapt(cfg, progress)


def resume_adapt(run: str | Path, *, progress: bool = False) -> Run | None:
    """Continue an interrupted ``adapt`` run from its last finished epoch, as configured."""
    import yaml

    from .adaptation import AdaptConfig
    from .adaptation import adapt as run_adapt
    from .adaptation.config import ADAPT_KEYS

    run_dir = Path(run).expanduser()
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise TlcvError(f"{run_dir} is not a tlcv run folder (no config.yaml)", path=str(run_dir))
    if (run_dir / "model.json").is_file():
        raise TlcvError(f"{run_dir} already finished", path=str(run_dir))
    saved = yaml.safe_load(config_file.read_text()) or {}
    cfg = AdaptConfig(**{k: v for k, v in saved.items() if k in ADAPT_KEYS})
    cfg.out, cfg.resume = str(run_dir), str(run_dir)  # the folder pointed at, not the saved one
    return run_adapt(cfg, progress)


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
    from .deploy.engine import check_engine
    from .features.memo import cached_features, memo_key, remember

    check_engine(engine)
    if engine == "onnxruntime-int8":
        raise TlcvError(
            "extract runs a bare backbone: int8 graphs exist for exported runs only",
            hint="use --engine onnxruntime (fp32) here",
        )
    hit = cached_features(
        data,
        backbone,
        weights=weights,
        image_size=image_size,
        cache_dir=cache,
        device=device,
        strict=strict,
        engine=engine,
    )
    if hit is not None:
        return hit
    from .backbones import create_backbone
    from .data import discover
    from .features import cache_for, extract_features, resolve_device

    source = discover(data, strict=strict)
    net = create_backbone(backbone, weights, image_size)
    encoder = net
    if engine == "onnxruntime":
        from .deploy import backbone_encoder

        encoder = backbone_encoder(net, cache)
    fs = extract_features(
        source.all_items(),
        encoder,
        cache_dir=cache,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        strict=strict,
        progress=progress,
    )
    remember(
        memo_key(backbone, weights, image_size, device, engine),
        cache_for(encoder, cache, resolve_device(device)),
        net.feature_dim,
        net.weights_source,
        cache,
    )
    return fs


def _run(run: str | Path | Run) -> Run:
    from .runs import Run, load_run

    return run if isinstance(run, Run) else load_run(run)


@dataclass
class Scored:
    """Class probabilities of the readable inputs, plus what was skipped and, for clips, the
    sampled frame indices and per-step probabilities."""

    probs: np.ndarray
    items: list[ImageItem]
    skipped: list[tuple[str, str]]
    steps: list[tuple[np.ndarray, np.ndarray]] | None = None


def _scores(
    run: Run,
    items: list[ImageItem],
    *,
    cache,
    batch_size,
    num_workers,
    device,
    strict,
    progress,
    prefix: int | None = None,
    engine: str = "torch",
) -> Scored:
    import torch

    from .deploy.engine import check_engine
    from .features import extract_features

    check_engine(engine)
    model = run.model()
    common = dict(
        cache_dir=cache,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        strict=strict,
        progress=progress,
    )
    if engine.startswith("onnxruntime"):
        from .deploy import run_encoder

        fs = extract_features(items, run_encoder(run, int8=engine.endswith("int8")), **common)
        with torch.no_grad():
            probs = torch.softmax(model.head(torch.from_numpy(fs.features)), dim=1).numpy()
        return Scored(probs, fs.items, fs.skipped)
    if not run.is_sequence:
        fs = extract_features(items, model.backbone, **common)
        with torch.no_grad():
            probs = torch.softmax(model.head(torch.from_numpy(fs.features)), dim=1).numpy()
        return Scored(probs, fs.items, fs.skipped)
    from .engine.sequences import pad_batch
    from .features.clips import extract_clip_features
    from .strategies.sequence import clip_logits
    from .video import sample_indices

    cf = extract_clip_features(items, model.backbone, **common)
    frames = int(run.info["frames"])
    logits = clip_logits(model.head, cf.sequences, frames=frames, prefix=prefix)
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy() if len(logits) else logits
    steps = []
    with torch.no_grad():
        for seq in cf.sequences:
            idx = sample_indices(len(seq), frames, "uniform", prefix=prefix)
            feats, lengths, _ = pad_batch([(torch.from_numpy(seq[idx]), 0)])
            step = torch.softmax(model.head.step_logits(feats, lengths)[0], dim=1).numpy()
            steps.append((idx, step))
    return Scored(probs, cf.items, cf.skipped, steps)


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
) -> dict:
    """Score every labelled image (or clip) under ``data`` (all splits) with a saved run.

    ``prefix`` (clip runs): use only each clip's first K frames. ``engine``: "torch" or
    "onnxruntime" (the run's exported graph; exported into RUN/export/ on first use) or
    "onnxruntime-int8" (the quantized graph `tlcv export --int8` kept).

    Writes metrics.json, per_class.csv, predictions.csv and confusion.png to ``out``
    (default: RUN/eval/<data folder name>).
    """
    import numpy as np

    from .data import discover
    from .evaluation import classification_metrics, plot_confusion
    from .runs import rows_to_csv

    run = _run(run)
    if run.is_sequence:
        from .video import discover_clips

        source = discover_clips(data, strict=strict)
    else:
        source = discover(data, strict=strict)
    items = source.all_items()
    known = set(run.classes)
    unknown = sorted({it.label for it in items} - known)
    if unknown and strict:
        raise TlcvError(
            f"classes the model never saw: {', '.join(unknown)}",
            hint="evaluate on data with the run's classes: " + ", ".join(run.classes),
        )
    scored = [it for it in items if it.label in known]
    if not scored:
        raise TlcvError(
            f"no image under {data} belongs to the model's classes",
            hint="the run knows: " + ", ".join(run.classes[:20]),
        )
    fs = _scores(
        run,
        scored,
        cache=cache,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        strict=strict,
        progress=progress,
        prefix=prefix,
        engine=engine,
    )
    probs = fs.probs
    lookup = {c: i for i, c in enumerate(run.classes)}
    y_true = np.array([lookup[it.label] for it in fs.items], dtype=int)
    y_pred = probs.argmax(1) if len(probs) else np.array([], dtype=int)
    metrics = classification_metrics(y_true, y_pred, run.classes)
    metrics.update(
        {
            "skipped": len(fs.skipped),
            "skipped_files": [{"path": p, "reason": r} for p, r in fs.skipped],
            "unknown_classes": {c: sum(it.label == c for it in items) for c in unknown},
            "data": str(data),
            "run": str(run.path),
            "notes": source.notes,
            "prefix": prefix,
        }
    )
    out_dir = Path(out) if out else run.path / "eval" / Path(str(data)).resolve().name
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics["confusion_png"] = str(
        plot_confusion(
            metrics["confusion"],
            run.classes,
            out_dir / "confusion.png",
            title=f"{Path(str(data)).name}: accuracy {metrics['accuracy']:.3f}",
        )
    )
    write_json(out_dir / "metrics.json", metrics)
    write_text(out_dir / "per_class.csv", rows_to_csv(metrics["per_class"]))
    write_text(
        out_dir / "predictions.csv",
        rows_to_csv(
            [
                {
                    "path": it.path,
                    "label": it.label,
                    "predicted": run.classes[int(p)],
                    "score": f"{float(probs[i, p]):.4f}",
                }
                for i, (it, p) in enumerate(zip(fs.items, y_pred, strict=True))
            ]
        ),
    )
    metrics["output_dir"] = str(out_dir)
    return metrics


def collect_images(paths: list[str | Path]) -> list[ImageItem]:
    """Files as given, and images found recursively in folders, in a stable order."""
    items = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            items.extend(ImageItem(str(p), None, file_identity(p)) for p in files)
        elif path.is_file():
            items.append(ImageItem(str(path), None, file_identity(path)))
        else:
            raise TlcvError(f"no such file or folder: {path}", path=str(path))
    return items


def collect_clips(paths: list[str | Path]) -> list[ImageItem]:
    """Video files and frame folders as given, and clips found inside other folders."""
    from .video import VIDEO_SUFFIXES, clip_identity, is_clip

    items = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise TlcvError(f"no such file or folder: {path}", path=str(path))
        if is_clip(path):
            found = [path]
        elif path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
            )
        else:
            raise TlcvError(
                f"{path} is not a video file",
                path=str(path),
                hint=f"video types: {', '.join(sorted(VIDEO_SUFFIXES))}",
            )
        items.extend(ImageItem(str(p), None, clip_identity(p)) for p in found)
    return items


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
) -> list[dict]:
    """Top-k classes for each image or clip; unreadable inputs get an ``error`` instead.

    Features are computed in memory; ``cache`` (a folder) stores and reuses them there.

    Clip runs add ``steps``: the sampled frame indices with the head's top class after each
    (``prefix``: look only at the first K frames).
    """
    import numpy as np

    run = _run(run)
    items = collect_clips(paths) if run.is_sequence else collect_images(paths)
    # One-off predictions stay in memory unless a cache folder is named: a shard written and
    # fsynced per call costs more than the features of a few images.
    cache = False if cache is None else cache
    if not items:
        raise TlcvError(
            "no images or clips found in the given paths",
            hint=f"image types: {', '.join(sorted(IMAGE_SUFFIXES))}; or video files",
        )
    fs = _scores(
        run,
        items,
        cache=cache,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        strict=strict,
        progress=False,
        prefix=prefix,
        engine=engine,
    )
    probs = fs.probs
    k = max(1, min(top_k, len(run.classes)))
    by_path = {it.path: i for i, it in enumerate(fs.items)}
    errors = dict(fs.skipped)
    results = []
    for it in items:
        if it.path in by_path:
            row = probs[by_path[it.path]]
            top = np.argsort(-row)[:k]
            results.append(
                {
                    "path": it.path,
                    "top": [
                        {"label": run.classes[int(c)], "score": round(float(row[c]), 6)}
                        for c in top
                    ],
                }
            )
            if fs.steps is not None:
                idx, step = fs.steps[by_path[it.path]]
                results[-1]["steps"] = [
                    {
                        "frame": int(f),
                        "label": run.classes[int(p.argmax())],
                        "score": round(float(p.max()), 6),
                    }
                    for f, p in zip(idx, step, strict=True)
                ]
        else:
            results.append({"path": it.path, "error": errors.get(it.path, "unreadable")})
    return results


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
