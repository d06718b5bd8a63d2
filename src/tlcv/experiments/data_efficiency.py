"""Data efficiency: test accuracy against labelled images per class, per strategy, over seeds
(each seed draws a different few-shot subset; the test set is the same for every cell)."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import TlcvError
from ..io import write_bytes, write_json, write_text
from ..runs import rows_to_csv
from . import register_experiment
from .cells import CellLog, mean_spread, write_experiment

DEFAULT_SHOTS = "1,2,5,10,20,all"
SPLIT_SEED = 0  # one train/val/test split for every cell


def parse_shots(text: str) -> list[int | None]:
    """``1,2,5,all`` -> [1, 2, 5, None] (None: every training image)."""
    shots: list[int | None] = []
    for token in (t.strip().lower() for t in str(text).split(",") if t.strip()):
        if token == "all":
            shots.append(None)
        elif token.isdigit() and int(token) > 0:
            shots.append(int(token))
        else:
            raise TlcvError(
                f"--shots takes positive integers and 'all', got {token!r}",
                hint="e.g. --shots 1,2,5,10,20,all",
            )
    if not shots:
        raise TlcvError("--shots is empty", hint="e.g. --shots 1,2,5,10,20,all")
    return sorted(set(shots), key=lambda k: float("inf") if k is None else k)


def parse_strategies(text: str | list[str], registry=None) -> list[str]:
    """Names checked against ``registry`` (a task's strategies; default: classification's)."""
    from ..tasks import DEFAULT_TASK, get_task

    names = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    for name in names:
        (registry or get_task(DEFAULT_TASK).strategies).get(name)  # an unknown one: listed
    if not names:
        raise TlcvError("--strategies is empty", hint="e.g. features,finetune,scratch,classical")
    return names


def _label(shots: int | None) -> str:
    return "all" if shots is None else str(shots)


@register_experiment("data-efficiency")
def data_efficiency(
    data: str | Path,
    out: str | Path,
    *,
    strategies: str | list[str] = "features,classical",
    shots: str = DEFAULT_SHOTS,
    seeds: int = 3,
    echo=print,
    **train_options,
) -> dict:
    """Run (or resume) the grid and write results.jsonl, summary.json/.csv and the plot."""
    from ..api import train
    from ..tasks import task_for_data

    out = Path(out).expanduser()
    task = task_for_data(data, train_options.get("task"))
    names = parse_strategies(strategies, task.strategies)
    shot_list = parse_shots(shots)
    if seeds < 1:
        raise TlcvError("--seeds must be at least 1")
    log = CellLog(out)
    write_experiment(
        out,
        {
            "experiment": "data-efficiency",
            "data": str(data),
            "strategies": names,
            "shots": [_label(k) for k in shot_list],
            "seeds": seeds,
            "split_seed": SPLIT_SEED,
            "task": task.name,
            "budget": task.budget_option,
            "train_options": train_options,
        },
    )

    def work(spec: dict) -> dict:
        started = time.perf_counter()
        run = train(
            data,
            out / "runs" / f"{spec['strategy']}-{spec['shots']}-seed{spec['seed']}",
            strategy=spec["strategy"],
            seed=spec["seed"],
            split_seed=SPLIT_SEED,
            overwrite=True,
            **{task.budget_option: None if spec["shots"] == "all" else int(spec["shots"])},
            **train_options,
        )
        metrics = run.metrics
        split = next((s for s in task.scored_splits if s in metrics), None)
        if split is None:
            raise TlcvError(
                "the run has no test split to score",
                hint="give data with a test/ folder, or leave --test-fraction above 0",
            )
        notes = run.notes
        score = metrics[split][task.score_metric]
        return {
            "score": score,
            **({"test_accuracy": score} if task.score_metric == "accuracy" else {}),
            "metric": f"{split} {task.score_label}",
            "n_train": run.config.get("resolved", {}).get(
                "n_train", metrics.get("train", {}).get("n")
            ),
            "n_test": metrics[split]["n"],
            "seconds": round(time.perf_counter() - started, 2),
            "short_classes": [n for n in notes if "has only" in n],
            "run": str(run.path),
        }

    cells = [
        (
            f"{name}/shots={_label(k)}/seed={seed}",
            {"strategy": name, "shots": _label(k), "seed": seed},
        )
        for name in names
        for k in shot_list
        for seed in range(seeds)
    ]
    skipped = log.run(cells, work, echo)
    summary = summarise(log.rows, names, [_label(k) for k in shot_list])
    summary.update(
        metric=log.rows[-1].get("metric", "test accuracy") if log.rows else "",
        budget=task.budget_label,
        resumed_cells=skipped,
    )
    if summary["metric"].startswith("val"):
        summary["notes"].append(
            "scored on the val split (the data has no test split; val also chose each run's epoch)"
        )
    write_json(out / "summary.json", summary)
    write_text(out / "summary.csv", rows_to_csv(summary["table"]))
    plot_curves(summary, out / "data_efficiency.png", data=str(data))
    return summary


def summarise(rows: list[dict], strategies: list[str], shots: list[str]) -> dict:
    table = []
    for name in strategies:
        for k in shots:
            values = [
                r.get("score", r.get("test_accuracy"))
                for r in rows
                if r["strategy"] == name and r["shots"] == k
            ]
            if values:
                stats = mean_spread(values)
                table.append(
                    {
                        "strategy": name,
                        "shots": k,
                        "mean": round(stats["mean"], 4),
                        "std": round(stats["std"], 4),
                        "n_seeds": stats["n"],
                    }
                )
    notes = sorted({n for r in rows for n in r.get("short_classes", [])})
    return {"experiment": "data-efficiency", "table": table, "notes": notes}


def plot_curves(summary: dict, path: Path, *, data: str = "") -> Path:
    """Accuracy vs shots per class, mean line with a ±1 std band; 'all' drawn last."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary["table"]
    numeric = sorted({int(r["shots"]) for r in table if r["shots"] != "all"}) or [1]
    where = {str(k): float(k) for k in numeric}
    if any(r["shots"] == "all" for r in table):  # no 'all' tick for a grid without that point
        where["all"] = numeric[-1] * 2.5
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in dict.fromkeys(r["strategy"] for r in table):
        rows = sorted((r for r in table if r["strategy"] == name), key=lambda r: where[r["shots"]])
        x = [where[r["shots"]] for r in rows]
        mean = [100 * r["mean"] for r in rows]
        std = [100 * r["std"] for r in rows]
        ax.plot(x, mean, marker="o", label=name)
        ax.fill_between(x, [m - s for m, s in zip(mean, std, strict=True)],
                        [m + s for m, s in zip(mean, std, strict=True)], alpha=0.2)  # fmt: skip
    ax.set_xscale("log")
    ax.minorticks_off()  # only the shot counts are labelled
    ticks = sorted(where.values())
    ax.set_xticks(ticks)
    ax.set_xticklabels([k for k, _ in sorted(where.items(), key=lambda kv: kv[1])])
    ax.set_xlabel(summary.get("budget") or "labelled training images per class")
    ax.set_ylabel(f"{summary.get('metric') or 'test accuracy'} (%)")
    ax.set_title(f"data efficiency{': ' + Path(data).name if data else ''}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
