"""Generalisation across domains: train on one domain, score in-domain (its own test split) and
on every other domain; deep strategies, the classical baseline and, optionally, domain
adaptation methods (which also see the other domain's unlabelled images)."""

from __future__ import annotations

import io
import statistics
from pathlib import Path

from ..errors import TlcvError
from ..io import write_bytes, write_json, write_text
from ..runs import rows_to_csv
from . import register_experiment
from .cells import CellLog, write_experiment
from .data_efficiency import parse_strategies


def find_domains(data: Path, wanted: str | None) -> list[str]:
    found = sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [d.strip() for d in wanted.split(",")] if wanted else found
    missing = [d for d in names if d not in found]
    if missing or len(names) < 2:
        raise TlcvError(
            f"generalization needs at least two domain folders under {data}"
            + (f"; not found: {', '.join(missing)}" if missing else ""),
            path=str(data),
            hint=f"folders there: {', '.join(found) or 'none'} (each one an image folder)",
        )
    return names


def _scored(domain: Path) -> Path:
    """Where a domain is scored: its test/ split when it has one, else every image."""
    return domain / "test" if (domain / "test").is_dir() else domain


@register_experiment("generalization")
def generalization(
    data: str | Path,
    out: str | Path,
    *,
    strategies: str | list[str] = "features,classical",
    methods: str = "",
    domains: str | None = None,
    seeds: int = 1,
    echo=print,
    **train_options,
) -> dict:
    from ..adaptation.methods import parse_methods
    from ..api import adapt, evaluate, train
    from ..config import ADAPT_KEYS

    data, out = Path(data).expanduser(), Path(out).expanduser()
    names = find_domains(data, domains)
    kinds = parse_strategies(strategies) if strategies else []
    das = [m.strip() for m in methods.split(",") if m.strip()] if methods else []
    for method in das:
        parse_methods(method)
    log = CellLog(out)
    write_experiment(
        out,
        {
            "experiment": "generalization",
            "data": str(data),
            "domains": names,
            "strategies": kinds,
            "methods": das,
            "seeds": seeds,
            "train_options": train_options,
        },
    )
    adapt_options = {k: v for k, v in train_options.items() if k in ADAPT_KEYS}

    def work_train(spec: dict) -> dict:
        run = train(
            data / spec["source"],
            out / "runs" / spec["cell_dir"],
            strategy=spec["model"],
            seed=spec["seed"],
            overwrite=True,
            **train_options,
        )
        metrics = run.metrics
        scores = {spec["source"]: metrics["test"]["accuracy"]}
        for other in names:
            if other != spec["source"]:
                scores[other] = evaluate(run, _scored(data / other))["accuracy"]
        return {"scores": scores}

    def work_adapt(spec: dict) -> dict:
        run = adapt(
            data / spec["source"],
            data / spec["target"],
            out / "runs" / spec["cell_dir"],
            method=spec["model"],
            seed=spec["seed"],
            overwrite=True,
            plots=False,
            **adapt_options,
        )
        accuracy = evaluate(run, _scored(data / spec["target"]))["accuracy"]
        return {"scores": {spec["target"]: accuracy}}

    cells = []
    for seed in range(seeds):
        for source in names:
            for kind in kinds:
                spec = {
                    "model": kind,
                    "source": source,
                    "seed": seed,
                    "cell_dir": f"{kind}-{source}-seed{seed}",
                }
                cells.append((f"{kind}/{source}/seed={seed}", spec, work_train))
            for method in das:
                for target in (n for n in names if n != source):
                    spec = {
                        "model": f"adapt:{method}",
                        "source": source,
                        "target": target,
                        "seed": seed,
                        "cell_dir": f"{method}-{source}-{target}-seed{seed}",
                    }
                    cells.append(
                        (
                            f"adapt:{method}/{source}->{target}/seed={seed}",
                            spec,
                            lambda s, m=method: work_adapt({**s, "model": m}),
                        )
                    )
    skipped = 0
    for key, spec, work in cells:
        skipped += log.run([(key, spec)], work, echo)
    summary = summarise(log.rows, names)
    summary["resumed_cells"] = skipped
    write_json(out / "summary.json", summary)
    write_text(out / "summary.csv", rows_to_csv(summary["table"]))
    plot(summary, out / "generalization.png")
    return summary


def summarise(rows: list[dict], names: list[str]) -> dict:
    """Per model: mean in-domain and cross-domain accuracy, the gap, and every pair."""
    table, pairs = [], []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        within = [v for r in mine for d, v in r["scores"].items() if d == r["source"]]
        across = [v for r in mine for d, v in r["scores"].items() if d != r["source"]]
        row = {"model": model, "cross_domain": round(statistics.mean(across), 4)}
        if within:
            row["in_domain"] = round(statistics.mean(within), 4)
            row["gap"] = round(row["in_domain"] - row["cross_domain"], 4)
        table.append(row)
        for source in names:
            for target in names:
                values = [
                    r["scores"][target]
                    for r in mine
                    if r["source"] == source and target in r["scores"]
                ]
                if values:
                    pairs.append(
                        {
                            "model": model,
                            "source": source,
                            "target": target,
                            "accuracy": round(statistics.mean(values), 4),
                            "std": round(statistics.pstdev(values), 4),
                        }
                    )
    return {"experiment": "generalization", "table": table, "pairs": pairs, "notes": []}


def plot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["table"]
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(rows) + 2), 3.8))
    x = range(len(rows))
    ax.bar(
        [i - 0.2 for i in x], [100 * r.get("in_domain", 0) for r in rows], 0.4, label="in-domain"
    )
    ax.bar(
        [i + 0.2 for i in x], [100 * r["cross_domain"] for r in rows], 0.4, label="other domains"
    )
    ax.set_xticks(list(x))
    ax.set_xticklabels([r["model"] for r in rows], rotation=20, fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("generalisation across domains")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
