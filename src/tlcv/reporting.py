"""``tlcv report``: runs and experiments as one self-contained HTML file (plots embedded as
images) plus a Markdown version, so results can be read and shared without tlcv."""

from __future__ import annotations

import base64
import csv
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import TlcvError
from .evaluation.figures import png_of, pyplot
from .evaluation.rounding import rounded, with_spread
from .io import write_bytes, write_text
from .runs import environment


@dataclass
class Section:
    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[tuple[str, list[dict]]] = field(default_factory=list)
    images: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG)
    config: str = ""
    notes: list[str] = field(default_factory=list)


def learning_curves(history: list[dict]) -> bytes:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = [int(r["epoch"]) for r in history]
    for key, ax in (
        ("train_loss", left),
        ("val_loss", left),
        ("train_acc", right),
        ("val_acc", right),
        ("val_miou", right),
        ("oracle_target_acc", right),
        ("oracle_target_miou", right),
    ):
        values = [float(r[key]) if r.get(key) not in (None, "") else None for r in history]
        if any(v is not None for v in values):
            ax.plot(epochs, values, marker=".", label=key)
    left.set_title("loss")
    right.set_title("accuracy / mIoU" if any(r.get("val_miou") for r in history) else "accuracy")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return png_of(fig)


def validator_curves(history: list[dict], chosen: int | None) -> bytes | None:
    """Adaptation runs: every validator per epoch (each rescaled to 0-1 over the run), the
    chosen epoch marked, and the ORACLE target accuracy (dashed) when the run was asked for
    it: which validators would have chosen well."""
    keys = [k for k in history[0] if k.startswith("sel_")]
    if not keys:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    epochs = [int(r["epoch"]) for r in history]
    series = {k[4:]: k for k in keys}
    for oracle, label in (("oracle_target_acc", "acc."), ("oracle_target_miou", "mIoU")):
        if history[0].get(oracle) not in (None, ""):
            series[f"ORACLE target {label}"] = oracle
    for name, key in series.items():
        values = [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in history]
        finite = [v for v in values if v == v]
        if not finite:
            continue
        lo, hi = min(finite), max(finite)
        scaled = [(v - lo) / (hi - lo) if hi > lo else 0.5 for v in values]
        style = "--" if key.startswith("oracle_") else "-"
        ax.plot(epochs, scaled, style, marker=".", label=name, color="k" if style == "--" else None)
    if chosen is not None:
        ax.axvline(chosen, color="grey", alpha=0.5, label=f"kept: epoch {chosen}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("score, rescaled 0-1")
    ax.set_title("validators per epoch (higher = chosen)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return png_of(fig)


def score_text(m: dict, key: str) -> str | float:
    """A score at the precision it supports, with its 95% interval when it has one."""
    bounds = (m.get("intervals") or {}).get(key)
    if bounds is None:
        return m[key]
    return (f"{rounded(m[key], bounds)} [{rounded(bounds[0], bounds)}, "
            f"{rounded(bounds[1], bounds)}]")  # fmt: skip


def score_rows(metrics: dict, columns: tuple[tuple[str, str], ...]) -> list[dict]:
    """One row per scored split: its item count and the task's score columns (or the ones the
    split's result leads with), each with its interval where there is one."""
    rows = []
    for split, m in metrics.items():
        if not (isinstance(m, dict) and "n" in m):
            continue
        shown = [tuple(c) for c in m.get("headline") or columns]
        if all(key in m for _, key in shown):
            rows.append({"split": split, "items": m["n"],
                         **{label: score_text(m, key) for label, key in shown
                            if m.get(key) is not None}})  # fmt: skip
    return rows


def _evaluation_parts(path: Path, task) -> tuple[list, list]:
    """What `tlcv evaluate` wrote under RUN/eval/: each data set's scores with intervals, and
    its pictures (confusion matrix, per-image Dice, the worst images' overlays)."""
    tables, pictures = [], []
    for file in sorted(path.glob("eval/*/metrics.json")):
        try:
            m = json.loads(file.read_text())
        except (OSError, ValueError):
            continue
        columns = [tuple(c) for c in m.get("headline") or task.score_columns]
        row = {"items": m.get("n"), **{label: score_text(m, key) for label, key in columns
                                        if m.get(key) is not None}}  # fmt: skip
        if m.get("bootstrap"):
            row["interval"] = f"{100 * m['bootstrap']['level']:g}% bootstrap"
        tables.append((f"evaluation on {file.parent.name}", [row]))
        for key in ("dice_png", "confusion_png"):
            if m.get(key) and Path(m[key]).is_file():
                pictures.append((f"{file.parent.name}: {key[:-4]}", Path(m[key]).read_bytes()))
        for overlay in m.get("overlays", [])[:4]:
            if Path(overlay).is_file():
                pictures.append((f"{file.parent.name}: {Path(overlay).stem}",
                                 Path(overlay).read_bytes()))  # fmt: skip
    return tables, pictures


def _run_section(path: Path) -> Section:
    from .tasks import task_of_info

    info = json.loads((path / "model.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    classes = json.loads((path / "classes.json").read_text())
    task = task_of_info(info)
    what = info.get("method") or info.get("classifier") or ""
    section = Section(f"run {path.name}")
    section.facts = [
        ("task", task.name),
        ("strategy", str(info.get("strategy", ""))),
        ("backbone", str(info.get("backbone", ""))),
        ("method / classifier", str(what)),
        ("classes", str(len(classes))),
    ]
    if task.head_info in info:  # decoder, detector
        section.facts.append((task.head_info, str(info[task.head_info])))
    rows = score_rows(metrics, task.score_columns)
    if rows:
        section.tables.append(("scores", rows))
    tables, pictures = task.report_parts(path, metrics)
    section.tables += tables
    section.images += pictures
    tables, pictures = _evaluation_parts(path, task)
    section.tables += tables
    section.images += pictures
    if "health" in metrics:
        section.tables.append(("target check (no labels)", _health_rows(metrics)))
        section.notes += [f"adaptation probably hurt: {r}" for r in metrics["health"]["reasons"]]
    if "oracle" in metrics:  # a classifier's accuracy or a segmentation's mIoU
        oracle = metrics["oracle"]
        score = oracle.get("target_accuracy", oracle.get("target_miou"))
        section.notes.append(f"{oracle['label']}: {score:.4f}")
    history_file = path / "history.csv"
    if history_file.is_file():
        with open(history_file, newline="") as fh:
            history = list(csv.DictReader(fh))
        if history:
            section.images.append(("learning curves", learning_curves(history)))
            chosen = metrics.get("selection", {}).get("best_epoch")
            validators = validator_curves(history, chosen)
            if validators is not None:
                section.images.append(("validators per epoch", validators))
    if (path / "tsne.png").is_file():
        section.images.append(
            ("t-SNE of source vs target features", (path / "tsne.png").read_bytes())
        )
    if (path / "config.yaml").is_file():
        section.config = (path / "config.yaml").read_text()
    if (path / "notes.txt").is_file():
        section.notes += [n[2:] for n in (path / "notes.txt").read_text().splitlines() if n]
    return section


def _health_rows(metrics: dict) -> list[dict]:
    """The negative-transfer check of an adapted run: adapted vs source-only predictions."""
    health, rows = metrics["health"], []
    for name in ("adapted", "source_only"):
        h = health.get(name)
        if h:
            rows.append(
                {
                    "model": name.replace("_", "-"),
                    "top class share": round(h["top_share"], 3),
                    "KL to source class mix": round(h["kl_to_source_prior"], 3),
                    "mean entropy": round(h["mean_entropy"], 3),
                }
            )
    if "agreement_with_source_only" in health and rows:
        rows[0]["agreement with source-only"] = round(health["agreement_with_source_only"], 3)
    vote = health.get("arbiter")
    if vote and rows:  # who the neighbours side with where the two models disagree
        rows[0]["arbiter: estimated gain (points)"] = round(100 * vote["estimated_gain"], 1)
    if "target_source_only" in metrics and len(rows) > 1:
        rows[1]["target accuracy (labels, after the check)"] = round(
            metrics["target_source_only"]["accuracy"], 4
        )
    return rows


def _seeds_per_cell(path: Path) -> str:
    """Seeds behind each point, from the finished cells: experiment.json holds only the latest
    invocation's --seeds, and a resumed experiment may mix counts (e.g. "2-3")."""
    from .experiments.cells import CellLog

    counts = Counter(row["cell"].rsplit("/seed=", 1)[0] for row in CellLog(path).rows)
    low, high = min(counts.values(), default=0), max(counts.values(), default=0)
    return str(low) if low == high else f"{low}-{high}"


def _experiment_section(path: Path) -> Section:
    info = json.loads((path / "experiment.json").read_text())
    summary = json.loads((path / "summary.json").read_text())
    section = Section(f"experiment {info['experiment']}: {path.name}")
    section.facts = [("data", info["data"]), ("seeds", _seeds_per_cell(path))]
    section.tables.append(("mean ± std over seeds", with_spread(summary["table"])))
    if summary.get("pairs"):  # generalization: every source -> target score
        section.tables.append(
            ("every source → target pair, mean ± std over seeds", with_spread(summary["pairs"]))
        )
    for title, rows in summary.get("tables", []):  # any further tables an experiment keeps
        section.tables.append((title, rows))
    if summary.get("curves"):  # convergence: the plotted curves, as numbers
        section.tables.append(
            (
                "per epoch, mean and std over seeds",
                [
                    {"strategy": name, **{k: round(v, 4) for k, v in point.items()}}
                    for name, curve in summary["curves"].items()
                    for point in curve
                ],
            )
        )
    for png in sorted(path.glob("*.png")):
        section.images.append((png.stem.replace("_", " "), png.read_bytes()))
    section.config = yaml.safe_dump(info, sort_keys=False)
    section.notes = summary.get("notes", [])
    return section


def collect(paths: list[Path]) -> list[Section]:
    sections = []
    for raw in paths:
        path = Path(raw).expanduser()
        if (path / "summary.json").is_file() and (path / "experiment.json").is_file():
            sections.append(_experiment_section(path))
        elif (path / "model.json").is_file() and (path / "metrics.json").is_file():
            sections.append(_run_section(path))
        else:
            raise TlcvError(
                f"{path} holds no finished run or experiment",
                path=str(path),
                hint="give folders written by `tlcv train`, `tlcv adapt` or `tlcv experiment`",
            )
    return sections


def _cell(value: object) -> str:
    """Table text: a missing value (a target never reached) reads as a dash, not 'None'; a
    fraction at three significant digits (evaluation/rounding.py)."""
    if value is None:
        return "—"
    return rounded(value) if isinstance(value, float) else str(value)


def _html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>(empty)</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _md_table(rows: list[dict]) -> str:
    if not rows:
        return "(empty)\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
    "font-size:13px}img{max-width:100%}"
    "pre{background:#f6f6f6;padding:8px;font-size:12px}"
)


def build_report(paths: list[Path], out: Path) -> tuple[Path, Path]:
    """Write ``out`` (HTML, images inline) and ``out`` with .md (images in a side folder)."""
    sections = collect(paths)
    out = Path(out).expanduser()
    md_path = out.with_suffix(".md")
    assets = out.parent / f"{out.stem}_files"
    env = environment()
    parts = [
        f"<html><head><meta charset='utf-8'><title>tlcv report</title><style>{CSS}</style>"
        "</head><body><h1>tlcv report</h1>"
    ]
    md = ["# tlcv report\n"]
    overview = [{"section": s.title, **{k: v for k, v in s.facts}} for s in sections]
    parts.append("<h2>overview</h2>" + _html_table(overview))
    md.append("## overview\n\n" + _md_table(overview))
    for index, s in enumerate(sections):
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        md.append(f"\n## {s.title}\n")
        for caption, rows in s.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>" + _html_table(rows))
            md.append(f"\n### {caption}\n\n" + _md_table(rows))
        for j, (caption, png) in enumerate(s.images):
            data = base64.b64encode(png).decode()
            parts.append(
                f"<h3>{html.escape(caption)}</h3><img alt='{html.escape(caption)}' "
                f"src='data:image/png;base64,{data}'>"
            )
            name = f"s{index}_{j}.png"
            write_bytes(assets / name, png)
            md.append(f"\n![{caption}]({assets.name}/{name})\n")
        if s.notes:
            items = "".join(f"<li>{html.escape(n)}</li>" for n in s.notes)
            parts.append(f"<h3>notes</h3><ul>{items}</ul>")
            md.append("\n### notes\n\n" + "".join(f"- {n}\n" for n in s.notes))
        if s.config:
            parts.append(
                f"<details><summary>resolved configuration</summary><pre>"
                f"{html.escape(s.config)}</pre></details>"
            )
            md.append(
                f"\n<details><summary>configuration</summary>\n\n```yaml\n{s.config}```\n"
                "</details>\n"
            )
    env_rows = [{"key": k, "value": v} for k, v in env.items()]
    parts.append("<h2>environment</h2>" + _html_table(env_rows) + "</body></html>")
    md.append("\n## environment\n\n" + _md_table(env_rows))
    write_text(out, "".join(parts))
    write_text(md_path, "".join(md))
    return out, md_path
