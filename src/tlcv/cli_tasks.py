"""What `tlcv train` and `tlcv evaluate` print, for any task: the columns come from the task
(tasks/__init__.py's score_columns, per_class_columns, head_info, evaluation_files)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from .cli_common import console, err, esc
from .evaluation.rounding import rounded


def _cell(value) -> str:
    return rounded(value)


def print_trained(run, task) -> None:
    """The run's scores per split (the splits it has)."""
    info = run.info
    how = info.get(task.head_info) or info.get("strategy", "")
    if info.get(task.head_info) and info.get("strategy"):
        how = f"{how} ({info['strategy']})"
    table = Table(title=esc(f"{info['backbone']} + {how} -> {run.path}"))
    for label in ("split", "images", *(label for label, _ in task.score_columns)):
        table.add_column(label)
    for split in ("train", "val", "test"):
        m = run.metrics.get(split)
        if isinstance(m, dict) and all(key in m for _, key in task.score_columns):
            table.add_row(split, str(m["n"]), *(_cell(m[key]) for _, key in task.score_columns))
    console.print(table)


def print_evaluation(m: dict, task) -> None:
    """Headline scores (the task's, or the ones the result leads with: two-class segmentation's
    Dice...), the per-class table (classes present in the data) and the files."""
    intervals = m.get("intervals") or {}
    scores = "   ".join(  # an undefined score (None: e.g. no defective image) prints as -
        f"{label} {'-' if m[key] is None else rounded(m[key], intervals.get(key))}"
        + (f" [{rounded(intervals[key][0], intervals[key])}, "
           f"{rounded(intervals[key][1], intervals[key])}]" if intervals.get(key) else "")
        for label, key in (m.get("headline") or task.score_columns)
    )  # fmt: skip
    console.print(f"{scores}   images {m['n']}   skipped {m['skipped']}")
    if intervals:
        boot = m.get("bootstrap") or {}
        level, resamples = 100 * boot.get("level", 0.95), boot.get("resamples", "?")
        console.print(f"in brackets: the {level:g}% bootstrap interval ({resamples} resamples)")
    (count_label, count_key), *columns = task.per_class_columns
    table = Table()
    for label in ("class", count_label, *(label for label, _ in columns)):
        table.add_column(label)
    for r in m["per_class"]:
        if r.get(count_key):
            table.add_row(
                esc(r["class"]), str(r[count_key]), *(_cell(r.get(key)) for _, key in columns)
            )
    console.print(table)
    if m.get("unknown_classes"):
        err.print(f"[yellow]left out, classes the model never saw:[/] {esc(m['unknown_classes'])}")
    for label, key in task.evaluation_files:
        if m.get(key):
            console.print(f"{label}: {esc(m[key])}")
    console.print(f"report folder: {esc(m['output_dir'])}")
    if m.get("explained_errors"):
        console.print(f"maps of the surest errors: {esc(Path(m['explained_errors'][0]).parent)}")
