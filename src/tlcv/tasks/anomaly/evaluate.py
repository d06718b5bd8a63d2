"""Scores of an anomaly model on labelled images (image AUROC / F1-max, pixel AUROC and PRO
where masks exist, a table per defect kind), `tlcv evaluate`'s files and `tlcv predict`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import TlcvError
from ...evaluation.figures import png_bytes
from ...io import write_json, write_text
from . import metrics as M
from .data import AnomalyItem, discover
from .loading import score_paths
from .pictures import heat_overlay, histogram_png, panel_png, resize_map, write_png


def _truth(item: AnomalyItem, size: tuple[int, int]) -> np.ndarray | None:
    """The item's defect mask at its image's size (good images: all zero); None: no truth."""
    if not item.defective:
        return np.zeros(size, dtype=bool)
    if item.mask is None:
        return None
    with Image.open(item.mask) as mask:
        return np.asarray(mask.convert("L")) > 0


def score_items(
    scorer,
    items: list[AnomalyItem],
    threshold: float | None,
    *,
    pixels: bool,
    span=None,
    panels: int = 4,
    out: Path | None = None,
    bootstrap: int = 0,
) -> tuple[dict, list]:
    """Metrics over ``items`` (each with its ``bootstrap`` interval; panels PNGs into ``out``);
    unreadable items as (path, why). ``scorer(paths) -> loading.Scores``."""
    from .intervals import image_intervals, pixel_intervals

    got = scorer([i.path for i in items])
    skipped = [(items[i].path, why) for i, why in got.failed]
    scored = [items[i] for i in got.indices]
    defective = np.array([i.defective for i in scored], dtype=bool)
    scores = got.scores
    result: dict = {
        "n": len(scored),
        "n_good": int((~defective).sum()),
        "n_defective": int(defective.sum()),
        "threshold": threshold,
    }
    undefined = []
    result["image_auroc"] = M.auroc(defective, scores)
    result["image_f1_max"], result["f1_max_threshold"] = M.f1_max(defective, scores)
    result["intervals"] = image_intervals(defective, scores, bootstrap)
    result["per_image"] = [{"path": i.path, "kind": i.kind, "defective": bool(i.defective),
                            "score": round(float(v), 6)} for i, v in zip(scored, scores,
                                                                          strict=True)]  # fmt: skip
    if result["image_auroc"] is None:
        undefined.append(
            "image AUROC and F1-max need good and defective images; the data has "
            f"{result['n_good']} good and {result['n_defective']} defective"
        )
    if threshold is not None:
        result.update(M.at_threshold(defective, scores, threshold))
    truths = (
        [_truth(item, size) for item, size in zip(scored, got.sizes, strict=True)] if pixels else []
    )
    # each map at its mask's size, once (None where the image has no truth)
    sized = [None if t is None else resize_map(got.maps[k], t.shape) for k, t in enumerate(truths)]
    result["pixel_auroc"] = result["pro"] = None
    if pixels:
        have = [k for k, t in enumerate(truths) if t is not None]
        masks = [truths[k] for k in have]
        maps = [sized[k] for k in have]
        flat = np.concatenate([m.ravel() for m in masks]) if masks else np.zeros(0, bool)
        result["pixel_auroc"] = (
            M.auroc(flat, np.concatenate([m.ravel() for m in maps])) if masks else None
        )
        result["pro"] = M.pro(masks, maps) if masks else None
        if masks and result["pixel_auroc"] is not None:
            result["intervals"].update(pixel_intervals(masks, maps, bootstrap))
        result["pixel_images"] = len(masks)
        if result["pixel_auroc"] is None:
            undefined.append("pixel AUROC and PRO need masks with defective pixels")
    else:
        undefined.append("pixel AUROC and PRO need ground_truth/ masks (none in this data)")
    result["per_class"] = _per_kind(scored, scores, defective, truths, sized, threshold)
    result["undefined"] = undefined
    if out is not None:  # panels and the histogram of scores, good vs defective
        result["panels"] = _panels(scored, scores, got, truths, span, panels, out / "panels")
        result["panels_dir"] = str(out / "panels")
        auroc = result["image_auroc"]
        title = "image scores" + (f": AUROC {auroc:.3f}" if auroc is not None else "")
        result["histogram_png"] = write_png(
            out / "histogram.png", histogram_png(scores, defective, threshold, title)
        )
    return result, skipped


def _per_kind(scored, scores, defective, truths, sized, threshold) -> list[dict]:
    """One row per kind: images, AUROC of that kind against the good images, share flagged
    (at the run's threshold), PRO of its regions (where masks exist)."""
    rows = []
    kinds = sorted({i.kind for i in scored}, key=lambda k: (k != "good", k))
    good = ~defective
    for kind in kinds:
        mine = np.array([i.kind == kind for i in scored])
        row = {"class": kind, "n": int(mine.sum()), "mean_score": float(scores[mine].mean())}
        if kind != "good":
            both = mine | good
            row["auroc"] = M.auroc(defective[both], scores[both])
        if threshold is not None:
            row["flagged"] = float((scores[mine] > threshold).mean())
        if truths and kind != "good":
            idx = [k for k in range(len(scored)) if (mine[k] or good[k]) and truths[k] is not None]
            row["pro"] = M.pro([truths[k] for k in idx], [sized[k] for k in idx])
        rows.append(row)
    return rows


def _panels(scored, scores, got, truths, span, count, out: Path) -> list[str]:
    """image | map | truth for the highest-scoring defective images and the highest-scoring
    good ones (the false alarms, if any)."""
    from ...data import open_rgb

    order = np.argsort(-scores)
    bad = [k for k in order if scored[k].defective][:count]
    good = [k for k in order if not scored[k].defective][: max(1, count // 2)]
    files = []
    out.mkdir(parents=True, exist_ok=True)
    for n, k in enumerate(bad + good):
        item = scored[k]
        image = np.asarray(open_rgb(item.path))
        truth = truths[k] if truths and item.defective else None
        title = f"{item.kind}/{Path(item.path).name}: score {scores[k]:.3f}"
        png = panel_png(image, resize_map(got.maps[k], image.shape[:2]), truth, span, title)
        files.append(write_png(out / f"{n:02d}_{item.kind}_{Path(item.path).stem}.png", png))
    return files


def scorer_of(
    run,
    *,
    device: str = "auto",
    engine: str = "torch",
    batch_size: int = 16,
    num_workers: int | None = None,
):
    """``paths -> Scores`` for a run: eager torch, or its exported graph under ONNX Runtime."""
    from functools import partial

    from .loading import torch_forward

    if engine == "torch":
        from ...features.extract import resolve_device

        forward = torch_forward(run.model(), resolve_device(device))
    else:
        from .export import onnx_forward

        forward = onnx_forward(run, engine)
    size = int(run.info["head"]["image_size"])
    return partial(score_paths, forward, size, batch_size=batch_size, num_workers=num_workers)


def evaluate(
    run,
    data,
    *,
    out=None,
    strict: bool = False,
    device: str = "auto",
    engine: str = "torch",
    batch_size: int = 16,
    num_workers: int | None = None,
    panels: int = 4,
    bootstrap: int = 1000,
    **_ignored,
) -> dict:
    """Image and pixel scores of every labelled image under ``data`` (its test/ and val/
    folders, or its good/ + kind/ folders); metrics.json, per_kind.csv, the histogram and
    panels in ``out`` (default RUN/eval/<data name>)."""
    from ...runs import rows_to_csv

    source = discover(data, strict=strict)
    items = source.val + source.test
    if not items:
        raise TlcvError(
            f"{data} holds no labelled images to score",
            path=str(data),
            hint="give test/good/ + test/<kind>/ (MVTec layout) or good/ + <kind>/ folders",
        )
    out_dir = Path(out) if out else run.path / "eval" / Path(str(data)).resolve().name
    info = run.info
    scorer = scorer_of(
        run, device=device, engine=engine, batch_size=batch_size, num_workers=num_workers
    )
    result, skipped = score_items(
        scorer,
        items,
        info.get("threshold"),
        pixels=source.masks,
        span=info.get("map_range"),
        panels=panels,
        out=out_dir,
        bootstrap=bootstrap,
    )
    skipped = source.missing + skipped
    result.update(
        task="anomaly",
        data=str(data),
        run=str(run.path),
        engine=engine,
        notes=source.notes,
        threshold_source=info.get("threshold_source"),
        skipped=len(skipped),
        skipped_files=[{"path": p, "reason": r} for p, r in skipped],
    )
    if bootstrap > 0:
        from ...evaluation.bootstrap import describe

        result["bootstrap"] = {**describe(bootstrap), "method": "percentile bootstrap, images "
                               "resampled with replacement (pixel AUROC and PRO: on 1,000 "
                               "quantile bins of the pixel scores)"}  # fmt: skip
    per_image = result.pop("per_image")  # each image's score: the image intervals recomputable
    write_text(out_dir / "per_image.csv", rows_to_csv(per_image))
    write_json(out_dir / "metrics.json", result)
    write_text(out_dir / "per_kind.csv", rows_to_csv(result["per_class"]))
    result["output_dir"] = str(out_dir)
    return result


def predict(
    run,
    paths,
    *,
    out=None,
    device: str = "auto",
    engine: str = "torch",
    strict: bool = False,
    batch_size: int = 16,
    num_workers: int | None = None,
    **_ignored,
) -> list[dict]:
    """Per image: its score, the verdict at the run's threshold and a heat-map PNG in ``out``
    (default RUN/predictions); unreadable inputs get an ``error``."""
    from ...data import open_rgb
    from ...inference import collect_images, unique_stem

    items = collect_images(paths)
    if not items:
        raise TlcvError("no images found in the given paths")
    out_dir = Path(out) if out else run.path / "predictions"
    threshold, span = run.info.get("threshold"), run.info.get("map_range")
    scorer = scorer_of(
        run, device=device, engine=engine, batch_size=batch_size, num_workers=num_workers
    )
    got = scorer([i.path for i in items])
    if strict and got.failed:
        index, why = got.failed[0]
        raise TlcvError(f"{items[index].path}: {why}", path=items[index].path)
    answers: dict[int, dict] = {i: {"path": items[i].path, "error": why} for i, why in got.failed}
    used: set[str] = set()
    for k, index in enumerate(got.indices):
        path = items[index].path
        stem = unique_stem(path, used)
        picture = heat_overlay(np.asarray(open_rgb(path)), got.maps[k], span)
        heat_file = write_png(out_dir / f"{stem}_heatmap.png", png_bytes(picture))
        score = float(got.scores[k])
        verdict = None if threshold is None else ("defective" if score > threshold else "good")
        answers[index] = {
            "path": path,
            "score": round(score, 6),
            "verdict": verdict,
            "threshold": threshold,
            "heatmap": heat_file,
        }
    return [answers[i] for i in sorted(answers)]
