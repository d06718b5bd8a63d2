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


def first_reaching(history: list[dict], target: float) -> dict | None:
    """The first epoch whose validation accuracy reaches ``target`` (epochs are 1-based)."""
    for row in history:
        if row.get("val_acc", -1.0) >= target:
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

    out = Path(out).expanduser()
    names = parse_strategies(strategies)
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
    summary = summarise(log.rows, names, target)
    summary["resumed_cells"] = skipped
    write_json(out / "summary.json", summary)
    write_text(out / "summary.csv", rows_to_csv(summary["table"]))
    plot(summary, out / "convergence.png")
    return summary


def _test_accuracy(row: dict) -> float | None:
    """Test accuracy of the run's best-validation checkpoint, when its data had a test split."""
    metrics = Path(row.get("run", "")) / "metrics.json"
    if not row.get("run") or not metrics.is_file():
        return None
    return json.loads(metrics.read_text()).get("test", {}).get("accuracy")


def summarise(rows: list[dict], names: list[str], target: float | None) -> dict:
    curves = {}
    for name in names:
        runs = [r["history"] for r in rows if r["strategy"] == name]
        epochs = min(len(h) for h in runs)
        curves[name] = [
            {
                "epoch": e + 1,
                **{
                    f"{key}_{stat}": fn([h[e].get(key, float("nan")) for h in runs])
                    for key in ("val_acc", "val_loss", "seconds")
                    for stat, fn in (("mean", statistics.mean), ("std", statistics.pstdev))
                },
            }
            for e in range(epochs)
        ]
    if target is None:
        best = max(c[-1]["val_acc_mean"] for c in curves.values())
        target = round(0.9 * best, 4)
    # The level every run reaches (the weakest run's best): time to it compares all strategies
    # even when one never gets near the target.
    common = min(max(e.get("val_acc", 0.0) for e in r["history"]) for r in rows)  # unrounded
    table = []
    for name in names:
        runs = [r["history"] for r in rows if r["strategy"] == name]
        reached = [first_reaching(h, target) for h in runs]
        hits = [r for r in reached if r]
        level = [first_reaching(h, common) for h in runs]
        tests = [a for a in (_test_accuracy(r) for r in rows if r["strategy"] == name) if a]
        table.append(
            {
                "strategy": name,
                "final_val_acc": round(curves[name][-1]["val_acc_mean"], 4),
                "final_val_acc_std": round(curves[name][-1]["val_acc_std"], 4),
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
                "test_acc": round(statistics.mean(tests), 4) if tests else None,
                "test_acc_std": round(statistics.pstdev(tests), 4) if tests else None,
            }
        )
    return {
        "experiment": "convergence",
        "target": target,
        "common_level": round(common, 4),
        "table": table,
        "curves": curves,
        "notes": [],
    }


def plot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for name, curve in summary["curves"].items():
        x = [c["epoch"] for c in curve]
        t = [c["seconds_mean"] for c in curve]
        for ax, xs, key in (
            (axes[0], x, "val_acc"),
            (axes[1], t, "val_acc"),
            (axes[2], x, "val_loss"),
        ):
            mean = [c[f"{key}_mean"] for c in curve]
            std = [c[f"{key}_std"] for c in curve]
            ax.plot(xs, mean, marker=".", label=name)
            ax.fill_between(
                xs,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                alpha=0.2,
            )
    for ax, xlabel, ylabel in (
        (axes[0], "epoch", "validation accuracy"),
        (axes[1], "wall-clock seconds", "validation accuracy"),
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
