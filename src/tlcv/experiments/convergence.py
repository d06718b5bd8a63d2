"""Convergence: validation accuracy and loss against epochs and wall-clock time, pretrained
fine-tuning vs training from scratch with the same recipe; epochs and seconds to reach a
target accuracy."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from ..errors import TlcvError
from ..io import write_bytes, write_json, write_text
from ..runs import rows_to_csv
from . import register_experiment
from .cells import CellLog, write_experiment
from .data_efficiency import parse_strategies

TRAINED = ("finetune", "scratch")


def _history(run_dir: Path) -> list[dict]:
    with open(run_dir / "history.csv", newline="") as fh:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(fh)
        ]


def first_reaching(history: list[dict], target: float, key: str = "val_acc") -> dict | None:
    """The first epoch whose validation score ``key`` reaches ``target`` (1-based epochs)."""
    for row in history:
        if row.get(key, -1.0) >= target:
            return {"epochs": int(row["epoch"]) + 1, "seconds": row["seconds"]}
    return None


@register_experiment("convergence")
def convergence(
    data: str | Path,
    out: str | Path,
    *,
    strategies: str | list[str] = "finetune,scratch",
    seeds: int = 3,
    target: float | None = None,
    echo=print,
    **train_options,
) -> dict:
    """Run (or resume) fine-tune vs scratch; write curves, time-to-target and the plot.

    ``target``: validation accuracy to reach (default: 90% of the best mean final accuracy).
    """
    from ..api import train
    from ..tasks import task_for_data

    out = Path(out).expanduser()
    task = task_for_data(data, train_options.get("task"))
    names = parse_strategies(strategies, task.strategies)
    wrong = [n for n in names if n not in TRAINED]
    if wrong:
        raise TlcvError(
            f"convergence compares trained strategies, not {', '.join(wrong)}",
            hint="--strategies finetune,scratch",
        )
    train_options.setdefault("patience", None)  # every run goes the full distance
    log = CellLog(out)
    write_experiment(
        out,
        {
            "experiment": "convergence",
            "data": str(data),
            "strategies": names,
            "seeds": seeds,
            "target": target,
            "task": task.name,
            "metric": task.history_metric,
            "train_options": train_options,
        },
    )

    def work(spec: dict) -> dict:
        run = train(
            data,
            out / "runs" / f"{spec['strategy']}-seed{spec['seed']}",
            strategy=spec["strategy"],
            seed=spec["seed"],
            split_seed=0,
            overwrite=True,
            **train_options,
        )
        return {"history": _history(run.path), "run": str(run.path)}

    cells = [(f"{n}/seed={s}", {"strategy": n, "seed": s}) for n in names for s in range(seeds)]
    skipped = log.run(cells, work, echo)
    summary = summarise(log.rows, names, target, task.history_metric, task)
    summary["resumed_cells"] = skipped
    write_json(out / "summary.json", summary)
    write_text(out / "summary.csv", rows_to_csv(summary["table"]))
    plot(summary, out / "convergence.png", task.history_metric)
    return summary


def _test_score(row: dict, metric: str = "accuracy") -> float | None:
    """Test score of the run's best-validation checkpoint, when its data had a test split."""
    metrics = Path(row.get("run", "")) / "metrics.json"
    if not row.get("run") or not metrics.is_file():
        return None
    return json.loads(metrics.read_text()).get("test", {}).get(metric)


def summarise(
    rows: list[dict], names: list[str], target: float | None, key: str = "val_acc", task=None
) -> dict:
    """Curves of ``key`` (history.csv's validation score: val_acc, or val_miou for
    segmentation) and loss, mean and spread over seeds; time to the target level."""
    metric = task.score_metric if task is not None else "accuracy"
    curves = {}
    for name in names:
        runs = [r["history"] for r in rows if r["strategy"] == name]
        epochs = min(len(h) for h in runs)
        curves[name] = [
            {
                "epoch": e + 1,
                **{
                    f"{name_}_{stat}": fn([h[e].get(name_, float("nan")) for h in runs])
                    for name_ in (key, "val_loss", "seconds")
                    for stat, fn in (("mean", statistics.mean), ("std", statistics.pstdev))
                },
            }
            for e in range(epochs)
        ]
    if target is None:
        best = max(c[-1][f"{key}_mean"] for c in curves.values())
        target = round(0.9 * best, 4)
    # The level every run reaches (the weakest run's best): time to it compares all strategies
    # even when one never gets near the target.
    common = min(max(e.get(key, 0.0) for e in r["history"]) for r in rows)  # unrounded
    table = []
    for name in names:
        runs = [r["history"] for r in rows if r["strategy"] == name]
        reached = [first_reaching(h, target, key) for h in runs]
        hits = [r for r in reached if r]
        level = [first_reaching(h, common, key) for h in runs]
        tests = [a for a in (_test_score(r, metric) for r in rows if r["strategy"] == name) if a]
        table.append(
            {
                "strategy": name,
                f"final_{key}": round(curves[name][-1][f"{key}_mean"], 4),
                f"final_{key}_std": round(curves[name][-1][f"{key}_std"], 4),
                "target": target,
                "seeds_reaching": f"{len(hits)}/{len(runs)}",
                "epochs_to_target": round(statistics.mean(h["epochs"] for h in hits), 2)
                if hits
                else None,
                "seconds_to_target": round(statistics.mean(h["seconds"] for h in hits), 1)
                if hits
                else None,
                "common_level": round(common, 4),
                "epochs_to_common": round(statistics.mean(h["epochs"] for h in level), 2),
                "seconds_to_common": round(statistics.mean(h["seconds"] for h in level), 1),
                f"test_{metric}": round(statistics.mean(tests), 4) if tests else None,
                f"test_{metric}_std": round(statistics.pstdev(tests), 4) if tests else None,
            }
        )
    return {
        "experiment": "convergence",
        "target": target,
        "metric": key,
        "common_level": round(common, 4),
        "table": table,
        "curves": curves,
        "notes": [],
    }


def plot(summary: dict, path: Path, key: str = "val_acc") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = "mIoU" if key == "val_miou" else "accuracy"
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for name, curve in summary["curves"].items():
        x = [c["epoch"] for c in curve]
        t = [c["seconds_mean"] for c in curve]
        for ax, xs, column in (
            (axes[0], x, key),
            (axes[1], t, key),
            (axes[2], x, "val_loss"),
        ):
            mean = [c[f"{column}_mean"] for c in curve]
            std = [c[f"{column}_std"] for c in curve]
            ax.plot(xs, mean, marker=".", label=name)
            ax.fill_between(
                xs,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                alpha=0.2,
            )
    for ax, xlabel, ylabel in (
        (axes[0], "epoch", f"validation {label}"),
        (axes[1], "wall-clock seconds", f"validation {label}"),
        (axes[2], "epoch", "validation loss"),
    ):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].axhline(summary["target"], color="grey", ls="--", lw=1)
    axes[1].axhline(summary["target"], color="grey", ls="--", lw=1)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
