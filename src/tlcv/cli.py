"""The ``tlcv`` command line: thin wrappers over the Python API (tlcv.api)."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import click
import typer

from .cli_adapt import adapt as adapt_command
from .cli_common import ConfigOpt, PathsArg, RunArg, _max_rss_mb, _merge, _need, err, esc
from .cli_deploy import explain as explain_command
from .cli_deploy import export as export_command
from .cli_deploy import serve as serve_command
from .cli_experiment import experiment as experiment_command
from .cli_experiment import report as report_command
from .cli_models import models, weights_app
from .cli_options import TaskHelpCommand, config_command, keyword, positional
from .config import (
    EvaluateConfig,
    ExtractConfig,
    PredictConfig,
    TrainConfig,
)
from .errors import TlcvError

app = typer.Typer(
    name="tlcv",
    help="Transfer learning for computer vision: make a pretrained CNN good at your images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(weights_app, name="weights")
app.command("models")(models)


def _print_version(value: bool) -> None:
    if value:
        from ._version import __version__

        print(f"tlcv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="Show the libraries' own log lines (Lightning's banners)."),
    ] = False,
) -> None:
    """Transfer learning for computer vision: make a pretrained CNN good at your images.

    Shell completion: tlcv --install-completion (then open a new shell).
    """
    if verbose:
        from .console import set_verbose

        logging.getLogger().setLevel(logging.INFO)
        set_verbose()


@app.command("extract")
@config_command(ExtractConfig, extra=[keyword("config", ConfigOpt)])
def extract(ctx: typer.Context, given: dict, config: Path | None = None) -> None:
    """Compute backbone features of every image and store them in the cache.

    Re-runs compute only new or changed images; an interrupted run resumes. Under
    `torchrun --nproc-per-node N` each process takes a disjoint share.

    Example: tlcv extract --data photos/ --backbone mobilenet_v2 --weights mobilenet_v2-b0353104.pth
    """
    from .api import extract as extract_api
    from .distributed import is_main_process

    v = _merge(ctx, config, given)
    _need(v, "data")
    fs = extract_api(progress=sys.stderr.isatty(), **v)
    if is_main_process():
        print(
            json.dumps(
                {
                    "images": len(fs.items) + len(fs.skipped),
                    "extracted": len(fs.items),
                    "computed": fs.computed,
                    "cached": fs.cached,
                    "skipped": len(fs.skipped),
                    "feature_dim": int(fs.features.shape[1]),
                    "seconds": round(fs.seconds, 3),
                    "images_per_s": round((len(fs.items) + len(fs.skipped)) / fs.seconds, 2),
                    "max_rss_mb": round(_max_rss_mb(), 1),
                    "skipped_files": [{"path": p, "reason": r} for p, r in fs.skipped],
                }
            )
        )


def _task_names() -> list[str]:
    from .tasks import TASKS  # torch-free: task modules import their models lazily

    return TASKS.names()


@app.command("train", cls=TaskHelpCommand)
@config_command(TrainConfig, extra=[keyword("config", ConfigOpt)], names={"task": _task_names})
def train(ctx: typer.Context, given: dict, config: Path | None = None) -> None:
    """Train a model on your data and write a self-contained run folder: one class per image
    or clip, a class per pixel or boxes, as the data holds (or --task says).

    Examples:
      tlcv train --data photos/ --out runs/photos
      tlcv train --data photos/ --out runs/ft --strategy finetune --epochs 5 --freeze-epochs 1
      tlcv train --resume runs/ft
      tlcv train --data clips/ --out runs/clips --temporal bilstm --frames 16
    """
    from .api import resume as resume_api
    from .api import train as train_api

    resume = given.pop("resume")
    if resume:
        typed = {
            k: val
            for k, val in given.items()
            if getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"
        }
        run = resume_api(resume, progress=sys.stderr.isatty(), **typed)
    else:
        v = _merge(ctx, config, given)
        _need(v, "data", "out")
        data_path, out_path = v.pop("data"), v.pop("out")
        run = train_api(data_path, out_path, progress=sys.stderr.isatty(), **v)
    if run is None:
        return
    from .cli_tasks import print_trained
    from .tasks import task_of_run

    print_trained(run, task_of_run(run))
    _print_notes(run.notes)


def _print_notes(notes: list[str]) -> None:
    if notes:
        err.print("[yellow]notes:[/]\n" + esc("".join(f"- {n}\n" for n in notes).strip()))


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command("evaluate")
@config_command(
    EvaluateConfig,
    extra=[
        positional("run", RunArg),
        keyword("json_out", JsonOpt, False),
        keyword("config", ConfigOpt),
    ],
)
def evaluate(
    ctx: typer.Context, given: dict, run: Path, json_out: bool = False, config: Path | None = None
) -> None:
    """Score every labelled image under --data: accuracy, balanced accuracy, macro-F1,
    per-class table and a confusion-matrix PNG (segmentation runs: mIoU, IoU per class,
    pixel accuracy, confusion matrix and image | truth | prediction overlays; detection runs:
    mAP@0.5, mAP@[.5:.95], AP per class, a precision-recall plot and drawn boxes).

    Example: tlcv evaluate runs/photos --data new_photos/ --json
    """
    from .api import evaluate as evaluate_api
    from .cli_tasks import print_evaluation
    from .runs import load_run
    from .tasks import task_of_run

    v = _merge(ctx, config, given)
    _need(v, "data")
    loaded = load_run(run)
    m = evaluate_api(loaded, v.pop("data"), progress=sys.stderr.isatty() and not json_out, **v)
    if json_out:
        print(json.dumps({k: val for k, val in m.items() if k not in ("confusion",)}))
        return
    print_evaluation(m, task_of_run(loaded))


@app.command("predict")
@config_command(PredictConfig, extra=[positional("run", RunArg), positional("paths", PathsArg)])
def predict(ctx: typer.Context, given: dict, run: Path, paths: list[Path]) -> None:
    """Top-k classes for new images, or for clips with per-step scores (clip runs); for
    segmentation runs a mask and an overlay PNG per image and its class fractions; for
    detection runs the boxes (class, score) and a drawn PNG per image.

    Examples:
      tlcv predict runs/photos img1.jpg more_images/ --top-k 3 --format json
      tlcv predict runs/clips clip.mp4 --prefix 10
    """
    from .api import predict as predict_api
    from .io import write_text

    fmt, output = given["format"], given["output"]
    if str(given.get("engine", "")).startswith("onnxruntime"):  # torch is never imported
        from .deploy.runtime import open_graph_run

        task, loaded = open_graph_run(run).task, str(run)
    else:
        from .runs import load_run
        from .tasks import task_of_run

        loaded = load_run(run)
        task = task_of_run(loaded)
    results = predict_api(loaded, [str(p) for p in paths], **given)
    if fmt == "json":
        text = json.dumps(results, indent=2) + "\n"
    else:
        buf = io.StringIO()
        csv.writer(buf).writerows(task.prediction_rows(results))
        text = buf.getvalue()
    if output:
        write_text(output, text)
        err.print(f"wrote {len(results)} predictions to {esc(output)}")
    else:
        sys.stdout.write(text)


app.command("explain")(explain_command)
app.command("serve")(serve_command)
app.command("export")(export_command)
app.command("adapt")(adapt_command)
app.command("experiment")(experiment_command)
app.command("report")(report_command)


def _click_classes(name: str) -> tuple[type, ...]:
    """typer may vendor its own copy of click: catch both copies' exceptions."""
    modules = [click.exceptions]
    try:
        from typer._click import exceptions as vendored

        modules.append(vendored)
    except ImportError:
        pass
    return tuple(c for m in modules if (c := getattr(m, name, None)) is not None)


CLICK_ERRORS = _click_classes("ClickException")
CLICK_EXITS = _click_classes("Exit")
CLICK_ABORTS = _click_classes("Abort")


def _run_app() -> None:
    try:
        app(standalone_mode=False)
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Under torchrun, tear down the process group before the interpreter exits: a rank that
    exits with gloo's threads still running can abort ("terminate called without an active
    exception") and take the launch down with it."""
    if "torch.distributed" not in sys.modules:  # never import torch just for this
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main() -> None:
    """Entry point: user errors become one clear message (no traceback), exit code 2."""
    from .console import quiet_libraries

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    quiet_libraries()
    try:
        _run_app()
    except TlcvError as exc:
        err.print(f"[bold red]error:[/] {esc(exc.render())}", highlight=False)
        sys.exit(2)
    except CLICK_ABORTS:
        err.print(
            "[yellow]interrupted[/]: finished work is kept (cached features, written "
            "files); run the same command again to resume"
        )
        sys.exit(130)
    except KeyboardInterrupt as exc:
        if exc.args:
            err.print(f"[yellow]{esc(exc.args[0])}[/]")
        err.print(
            "[yellow]interrupted[/]: finished work is kept (cached features, written "
            "files); run the same command again to resume"
        )
        sys.exit(130)
    except CLICK_ERRORS as exc:  # usage errors: click's own one-line message
        exc.show()
        sys.exit(exc.exit_code)
    except CLICK_EXITS as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
