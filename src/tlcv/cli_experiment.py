"""``tlcv experiment NAME`` and ``tlcv report``: the paper's claims measured on your data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .cli_common import (
    BackboneOpt,
    CacheOpt,
    ConfigOpt,
    DataOpt,
    DeviceOpt,
    ImageSizeOpt,
    WeightsOpt,
    WorkersOpt,
    _merge,
    _need,
    console,
    err,
    esc,
)

DEFAULT_STRATEGIES = "features,classical"
# `tlcv train` keys an experiment's --config may add (lr, augment, per_class, ...); these stay
# the experiment's own: it sets them per cell.
CELL_KEYS = {"data", "out", "strategy", "seed", "overwrite", "resume", "split_seed"}
ADAPT_CELL_KEYS = {"source", "target", "out", "method", "trade_off", "seed", "oracle", "resume"}


def experiment(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(help="data-efficiency, convergence, generalization or adaptation-selection"),
    ],
    data: DataOpt = None,
    out: Annotated[str | None, typer.Option("--out", help="Experiment folder.")] = None,
    strategies: Annotated[
        str,
        typer.Option("--strategies", help="Comma-separated: features,finetune,scratch,classical."),
    ] = "features,classical",  # DEFAULT_STRATEGIES
    shots: Annotated[
        str,
        typer.Option(
            "--shots",
            help="Labelled images per class, e.g. 1,2,5,10,20,all (segmentation: training "
            "images, e.g. 25,50,100,all).",
        ),
    ] = "1,2,5,10,20,all",
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds (few-shot draws) per point.")] = 3,
    target: Annotated[
        float | None,
        typer.Option(
            "--target", help="convergence: accuracy to reach [default: 90% of the best final]."
        ),
    ] = None,
    methods: Annotated[
        str,
        typer.Option("--methods", help="generalization: adaptation methods too, e.g. dann,mcc."),
    ] = "",
    domains: Annotated[
        str | None,
        typer.Option(
            "--domains", help="generalization, adaptation-selection: domain folders [all]."
        ),
    ] = None,
    pairs: Annotated[
        str | None,
        typer.Option(
            "--pairs",
            help="adaptation-selection: SOURCE->TARGET pairs, e.g. amazon->webcam "
            "[every ordered pair of --domains].",
        ),
    ] = None,
    trade_offs: Annotated[
        str,
        typer.Option("--trade-offs", help="adaptation-selection: trade-off grid, e.g. 0.3,1."),
    ] = "1",
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    image_size: ImageSizeOpt = None,
    epochs: Annotated[int, typer.Option("--epochs", help="finetune / scratch epochs.")] = 10,
    classifier: Annotated[str, typer.Option("--classifier")] = "logreg",
    task: Annotated[
        str | None, typer.Option("--task", help="What to predict [default: from the data].")
    ] = None,
    decoder: Annotated[
        str | None, typer.Option("--decoder", help="Segmentation: unet, fpn or lraspp.")
    ] = None,
    ignore_index: Annotated[
        int | None, typer.Option("--ignore-index", help="Segmentation: mask value of void.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 64,
    num_workers: WorkersOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
    config: ConfigOpt = None,
) -> None:
    """Run (or resume) an experiment grid; finished cells are skipped on a rerun.

    --config may also hold any `tlcv train` option for every cell (lr, augment, per_class, ...).

    Example:
      tlcv experiment data-efficiency --data photos/ --strategies features,classical \\
          --shots 1,2,5,10,all --seeds 3 --out exp/photos
      tlcv report exp/photos --out report.html
    """
    given = {k: v for k, v in locals().items() if k not in ("ctx", "config", "name")}
    from .config import ADAPT_KEYS, TRAIN_KEYS, read_config_file
    from .experiments import experiment as run_experiment
    from .experiments import get_experiment

    get_experiment(name)  # an unknown name fails before anything else is read
    budgets = {"per_class", "max_images"}  # what --shots sets, per task
    passed = TRAIN_KEYS - CELL_KEYS - (budgets if name == "data-efficiency" else set())
    if name == "adaptation-selection":  # --config may hold any `tlcv adapt` option (mode, lr)
        passed |= ADAPT_KEYS - ADAPT_CELL_KEYS
    v = _merge(ctx, config, given, extra=passed)
    # typed on the command line, or set by --config
    explicit = {
        k for k in given if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"
    }
    if config is not None:
        explicit |= set(read_config_file(config, set(given) | passed))
    _need(v, "data", "out")
    fixed = ("data", "out", "strategies", "shots", "seeds", "target", "methods", "domains")
    fixed += ("pairs", "trade_offs")
    options = {k: v.pop(k) for k in list(v) if k not in fixed}
    options = {k: val for k, val in options.items() if val is not None}
    if name == "adaptation-selection":
        # only what was typed (or in --config): `tlcv adapt`'s own defaults otherwise
        options = {k: val for k, val in options.items() if k in explicit}
        options.update(pairs=v["pairs"], trade_offs=v["trade_offs"], domains=v["domains"])
        if v["methods"]:
            options["methods"] = v["methods"]
    if name == "data-efficiency":
        options["shots"] = v["shots"]
    elif name == "generalization":
        options.update(methods=v["methods"], domains=v["domains"])
    elif name == "convergence":
        options["target"] = v["target"]
        if v["strategies"] == DEFAULT_STRATEGIES:  # not chosen: compare the trained ones
            v["strategies"] = "finetune,scratch"

    def echo(row: dict) -> None:
        score, metric = (
            row.get("score", row.get("test_accuracy")),
            row.get("metric", "test accuracy"),
        )
        err.print(f"{esc(row['cell'])}: done" + (f", {metric} {score:.3f}" if score else ""))

    summary = run_experiment(
        name, v["data"], v["out"], strategies=v["strategies"], seeds=v["seeds"], echo=echo,
        **options,
    )  # fmt: skip
    from .evaluation.rounding import with_spread

    table = Table(title=esc(f"{name}: {v['data']} (mean ± std over seeds)"))
    rows = with_spread(summary["table"])
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(esc(row.get(col, "")) for col in columns))
    console.print(table)
    for note in summary["notes"]:
        err.print(f"[yellow]note:[/] {esc(note)}")
    if summary["resumed_cells"]:
        err.print(f"{summary['resumed_cells']} finished cell(s) reused from an earlier run")


def report(
    paths: Annotated[list[Path], typer.Argument(help="Run or experiment folders.")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write (and a .md beside it).")],
) -> None:
    """One self-contained HTML report (plots embedded) and a Markdown version.

    Example: tlcv report runs/ft runs/scratch exp/photos --out report.html
    """
    from .api import report as build_report

    html, md = build_report(paths, out)
    console.print(f"report: {esc(html)}\nmarkdown: {esc(md)}")
