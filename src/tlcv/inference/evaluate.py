"""`tlcv evaluate`: score every labelled input of a folder with a saved run, write the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TlcvError
from ..io import write_json, write_text
from ..runs import Run, rows_to_csv


def evaluate(
    run: Run,
    data: str | Path,
    *,
    out: str | Path | None = None,
    strict: bool = False,
    prefix: int | None = None,
    engine: str = "torch",
    task,  # the run's tasks.Task (Task.evaluate / Task.predict pass themselves)
    explain: int = 0,
    bootstrap: int = 1000,
    **extract,
) -> dict:
    """Metrics over all splits of ``data``; writes metrics.json, per_class.csv,
    predictions.csv and confusion.png to ``out`` (default RUN/eval/<data folder name>);
    ``explain=N``: class-activation maps of the N most confident errors in explain/;
    ``bootstrap``: resamples for the 95% interval of each headline score (0: none)."""
    from ..evaluation import classification_metrics, plot_confusion
    from ..evaluation.binary import calibrated, decide
    from ..evaluation.bootstrap import classification_intervals, describe

    source = task.discover(data, strict)
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
    result = task.score(run, scored, engine=engine, prefix=prefix, strict=strict, **extract)
    probs = result.probs
    lookup = {c: i for i, c in enumerate(run.classes)}
    y_true = np.array([lookup[it.label] for it in result.items], dtype=int)
    rule = run.info.get("binary")  # a two-class run's threshold and temperature (validation)
    if rule and len(probs):
        probs = calibrated(probs, rule["temperature"])
    y_pred = decide(probs, run.classes, rule)
    metrics = classification_metrics(y_true, y_pred, run.classes)
    if bootstrap > 0:  # recomputable from predictions.csv (label, predicted per item)
        metrics["intervals"] = classification_intervals(y_true, y_pred, len(run.classes),
                                                         bootstrap)  # fmt: skip
        metrics["bootstrap"] = describe(bootstrap)
    metrics.update(
        {
            "skipped": len(result.skipped),
            "skipped_files": [{"path": p, "reason": r} for p, r in result.skipped],
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
    if rule and len(probs):  # the screen's scores lead, then the task's own
        screen = screen_scores(probs, y_true, run.classes, rule, bootstrap,
                               out_dir / "reliability.png")  # fmt: skip
        metrics.setdefault("intervals", {}).update(screen.pop("intervals"))
        metrics.update(screen)
        metrics["headline"] = [list(c) for c in (*SCREEN_COLUMNS, *task.score_columns)]
    write_json(out_dir / "metrics.json", metrics)
    write_text(out_dir / "per_class.csv", rows_to_csv(metrics["per_class"]))
    rows = [
        {
            "path": it.path,
            "label": it.label,
            "predicted": run.classes[int(p)],
            "score": f"{float(probs[i, p]):.4f}",
        }
        for i, (it, p) in enumerate(zip(result.items, y_pred, strict=True))
    ]
    write_text(out_dir / "predictions.csv", rows_to_csv(rows))
    if explain > 0:
        metrics["explained_errors"] = _explain_errors(
            run, result.items, probs, y_true, y_pred, explain, out_dir / "explain"
        )
    metrics["output_dir"] = str(out_dir)
    return metrics


SCREEN_COLUMNS = (("ROC AUC", "roc_auc"), ("sensitivity", "sensitivity"),
                  ("specificity", "specificity"), ("ECE", "ece"))  # fmt: skip


def screen_scores(probs: np.ndarray, y_true: np.ndarray, classes: list[str], rule: dict,
                  bootstrap: int, reliability_file: Path) -> dict:  # fmt: skip
    """ROC AUC, sensitivity and specificity at the run's threshold, the expected calibration
    error (each with its interval over resampled images) and a reliability diagram."""
    from ..evaluation.binary import binary_scores, expected_calibration_error, plot_reliability
    from ..evaluation.bootstrap import interval

    positive = classes.index(rule["positive"])
    flags, score = (y_true == positive).astype(int), probs[:, positive]

    def scores(idx: np.ndarray) -> dict:
        found = binary_scores(flags[idx], score[idx], rule["threshold"])
        return {**found, "ece": expected_calibration_error(probs[idx], y_true[idx])}

    index = np.arange(len(y_true))
    out = scores(index)
    out["intervals"] = {key: interval((index,), lambda idx, key=key: scores(idx)[key],
                                      bootstrap) for _, key in SCREEN_COLUMNS}  # fmt: skip
    out.update(threshold=rule["threshold"], positive=rule["positive"],
               temperature=rule["temperature"], threshold_rule=rule["rule"])  # fmt: skip
    out["reliability_png"] = str(plot_reliability(
        probs, y_true, reliability_file,
        f"ECE {out['ece']:.3f} (temperature {rule['temperature']:.2f})"))  # fmt: skip
    return out


def _explain_errors(run, items, probs, y_true, y_pred, n: int, out: Path) -> list[str]:
    """Maps of the ``n`` errors the model was surest of, for the class it wrongly chose."""
    from ..interpret.pictures import explain_files, save

    wrong = [i for i in range(len(items)) if y_true[i] != y_pred[i]]
    wrong.sort(key=lambda i: -float(probs[i, y_pred[i]]))
    chosen = [items[i].path for i in wrong[:n]]
    if not chosen:
        return []
    explanations, _ = explain_files(run, chosen)
    truth = {it.path: it.label for it in items}
    for e in explanations:
        e.target = f"{e.target} (true: {truth[e.path]})"
    return save(explanations, out, prefix="error-")
