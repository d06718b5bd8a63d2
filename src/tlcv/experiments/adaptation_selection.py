"""How well each validator chooses an adaptation model without target labels.

A grid of ``tlcv adapt`` runs (domain pairs x methods x trade-offs x seeds) is trained once;
every run logs every validator per epoch, and, because the experiment asks for ``--oracle``,
the target accuracy per epoch. Then, per pair and seed, each validator picks the (method,
trade-off, epoch) it scores best among all of them, and the pick is scored on the target labels.

Label discipline: target labels reach only ``oracle_target_acc`` (the scoring column) and the
runs' final evaluation; training and every validator read features and predictions only, and
the picking step here reads validator columns only (``choose``). A test shuffles the target
labels and checks that every choice stays the same.
"""

from __future__ import annotations

import io
import math
import statistics
from pathlib import Path

from ..errors import TlcvError
from ..io import write_bytes, write_json, write_text
from ..runs import rows_to_csv
from . import register_experiment
from .cells import CellLog, write_experiment
from .generalization import find_domains

ORACLE = "oracle_target_acc"


def parse_pairs(spec: str | None, names: list[str]) -> list[tuple[str, str]]:
    """``amazon->webcam,dslr->amazon``; default every ordered pair of the domains."""
    if not spec:
        return [(s, t) for s in names for t in names if s != t]
    pairs = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        source, sep, target = token.partition("->")
        if not sep or source not in names or target not in names or source == target:
            raise TlcvError(
                f"bad domain pair {token!r}",
                hint=f"write SOURCE->TARGET with two of: {', '.join(names)}",
            )
        pairs.append((source, target))
    return pairs


def _epoch_rows(run_dir: Path) -> list[dict]:
    import csv

    with open(run_dir / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    from ..adaptation.validators import VALIDATORS, metric_name

    columns = {metric_name(name): name for name in VALIDATORS.names()}
    return [
        {
            "epoch": int(r["epoch"]),
            "scores": {v: float(r[k]) for k, v in columns.items() if r.get(k) not in ("", None)},
            "target_accuracy": float(r[ORACLE]) if r.get(ORACLE) else None,
        }
        for r in rows
    ]


@register_experiment("adaptation-selection")
def adaptation_selection(
    data: str | Path,
    out: str | Path,
    *,
    methods: str = "source-only,dann,cdan,dan,mcc",
    trade_offs: str = "1",
    pairs: str | None = None,
    domains: str | None = None,
    seeds: int = 3,
    echo=print,
    strategies=None,  # the experiment command passes it to every experiment; unused here
    **options,
) -> dict:
    from ..adaptation.methods import parse_methods
    from ..api import adapt
    from ..config import ADAPT_KEYS

    data, out = Path(data).expanduser(), Path(out).expanduser()
    names = find_domains(data, domains)
    grid_pairs = parse_pairs(pairs, names)
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    for method in method_list:
        parse_methods(method)
    weights = [float(t) for t in str(trade_offs).split(",") if t.strip()]
    adapt_options = {k: v for k, v in options.items() if k in ADAPT_KEYS}
    adapt_options.setdefault("mode", "frozen")
    log = CellLog(out)
    write_experiment(
        out,
        {
            "experiment": "adaptation-selection",
            "data": str(data),
            "pairs": [f"{s}->{t}" for s, t in grid_pairs],
            "methods": method_list,
            "trade_offs": weights,
            "seeds": seeds,
            "adapt_options": adapt_options,
        },
    )

    def work(spec: dict) -> dict:
        run = adapt(
            data / spec["source"],
            data / spec["target"],
            out / "runs" / spec["cell_dir"],
            method=spec["method"],
            trade_off=spec["trade_off"],
            seed=spec["seed"],
            oracle=True,
            plots=False,
            overwrite=True,
            **adapt_options,
        )
        return {"epochs": _epoch_rows(run.path)}

    cells = []
    for seed in range(seeds):
        for source, target in grid_pairs:
            for method in method_list:
                for trade_off in [1.0] if method == "source-only" else weights:
                    spec = {
                        "source": source, "target": target, "method": method,
                        "trade_off": trade_off, "seed": seed,
                        "cell_dir": f"{source}-{target}-{method}-t{trade_off:g}-seed{seed}",
                    }  # fmt: skip
                    key = f"{source}->{target}/{method}/t={trade_off:g}/seed={seed}"
                    cells.append((key, spec))
    skipped = log.run(cells, work, echo)
    summary = summarise(log.rows)
    summary["resumed_cells"] = skipped
    write_json(out / "summary.json", summary)
    write_text(out / "summary.csv", rows_to_csv(summary["table"]))
    plot(summary, out / "adaptation_selection.png")
    return summary


def candidates(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """(pair, seed) -> one entry per (method, trade-off, epoch) trained for it."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        key = (f"{row['source']}->{row['target']}", row["seed"])
        for epoch in row["epochs"]:
            groups.setdefault(key, []).append(
                {"method": row["method"], "trade_off": row["trade_off"], **epoch}
            )
    return groups


def choose(options: list[dict], validator: str) -> dict | None:
    """The candidate ``validator`` scores best. Reads validator scores only (never
    ``target_accuracy``): the label-blind step."""
    scored = [c for c in options if not math.isnan(c["scores"].get(validator, math.nan))]
    if not scored:
        return None
    return max(scored, key=lambda c: c["scores"][validator])


def _spearman(xs: list[float], ys: list[float]) -> float | None:
    from scipy.stats import spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return float(spearmanr(xs, ys).statistic)


def summarise(rows: list[dict]) -> dict:
    groups = candidates(rows)
    validators = sorted({v for opts in groups.values() for c in opts for v in c["scores"]})
    picks, table = [], []
    per_validator: dict[str, list[float]] = {v: [] for v in validators}
    correlations: dict[str, list[float]] = {v: [] for v in validators}
    baseline, oracle = [], []
    for (pair, seed), opts in sorted(groups.items()):
        scored = [c for c in opts if c["target_accuracy"] is not None]
        if not scored:
            continue
        oracle.append(max(c["target_accuracy"] for c in scored))
        source_only = [c for c in scored if c["method"] == "source-only"]
        plain = choose(source_only, "source-val") if source_only else None
        if plain is not None:
            baseline.append(plain["target_accuracy"])
        for validator in validators:
            pick = choose(scored, validator)
            if pick is None:
                continue
            per_validator[validator].append(pick["target_accuracy"])
            picks.append(
                {
                    "pair": pair, "seed": seed, "validator": validator,
                    "method": pick["method"], "trade_off": pick["trade_off"],
                    "epoch": pick["epoch"], "target_accuracy": round(pick["target_accuracy"], 4),
                }
            )  # fmt: skip
            rho = _spearman(
                [c["scores"].get(validator, float("nan")) for c in scored],
                [c["target_accuracy"] for c in scored],
            )
            if rho is not None and rho == rho:
                correlations[validator].append(rho)
    mean = statistics.mean
    reference = mean(per_validator["source-val"]) if per_validator.get("source-val") else None
    best_oracle = mean(oracle) if oracle else None
    for validator in validators:
        if not per_validator[validator]:
            continue
        value = mean(per_validator[validator])
        row = {
            "validator": validator,
            "target_accuracy": round(value, 4),
            "vs_source_only": round(value - mean(baseline), 4) if baseline else None,
            "rank_correlation": round(mean(correlations[validator]), 3)
            if correlations[validator]
            else None,
        }
        if reference is not None and best_oracle is not None and best_oracle > reference:
            row["gap_closed"] = round((value - reference) / (best_oracle - reference), 3)
        table.append(row)
    if baseline:
        table.append(
            {"validator": "source-only (source-val)", "target_accuracy": round(mean(baseline), 4)}
        )
    if oracle:
        table.append(
            {"validator": "ORACLE (target labels)", "target_accuracy": round(best_oracle, 4)}
        )
    notes = [
        "each validator picks method, trade-off and epoch per pair and seed among every run of "
        "the grid; target_accuracy is that pick's accuracy on the target labels (read only "
        "for this scoring); rank_correlation: Spearman between the validator and target "
        "accuracy over all candidates, averaged over pairs and seeds; gap_closed: share of "
        "the source-val -> ORACLE gap the validator closes"
    ]
    return {
        "experiment": "adaptation-selection",
        "table": table,
        "tables": [("what each validator picked", picks)],
        "notes": notes,
    }


def plot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary["table"] if "rank_correlation" in r]
    lines = {r["validator"]: r["target_accuracy"] for r in summary["table"] if r not in rows}
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(rows) + 3), 3.8))
    ax.bar([r["validator"] for r in rows], [100 * r["target_accuracy"] for r in rows])
    for (name, value), style in zip(lines.items(), ("--", ":"), strict=False):
        ax.axhline(100 * value, linestyle=style, color="k", label=name)
    low = min([r["target_accuracy"] for r in rows] + list(lines.values()), default=0)
    ax.set_ylim(max(0, 100 * low - 10), None)
    ax.set_ylabel("target accuracy of the pick (%)")
    ax.set_title("choosing the adapted model without target labels")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return write_bytes(path, buf.getvalue())
