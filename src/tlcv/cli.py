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
from rich.table import Table

from .cli_adapt import adapt as adapt_command
from .cli_common import (
    ConfigOpt,
    _max_rss_mb,
    _merge,
    _need,
    console,
    err,
    esc,
)
from .cli_experiment import experiment as experiment_command
from .cli_experiment import report as report_command
from .cli_options import TaskHelpCommand, config_command, keyword, positional
from .config import (
    EvaluateConfig,
    ExplainConfig,
    ExportConfig,
    ExtractConfig,
    PredictConfig,
    ServeConfig,
    TrainConfig,
)
from .errors import TlcvError

app = typer.Typer(
    name="tlcv",
    help="Transfer learning for computer vision: make a pretrained CNN good at your images.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
weights_app = typer.Typer(help="Manage pretrained weights for offline use.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")


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
        set_verbose(True)


@app.command()
def models(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List registered backbones: parameters, feature size, input size, local weights.

    Answers from the registry's metadata (tlcv.catalog): nothing is built and
    torch is not imported, so the list appears at once.

    Example: tlcv models --json
    """
    from .catalog import CATALOG, local_weights_tag

    rows = []
    for name, entry in sorted(CATALOG.items()):
        local = local_weights_tag(entry)
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "params": entry.params,
                "feature_dim": entry.feature_dim,
                "input_size": entry.input_size,
                "weights_local": local is not None,
                "weights": local or (entry.weights[0][0] if entry.weights else None),
                "description": entry.description,
            }
        )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="tlcv backbones (any timm model also works as timm:<name>)")
    for col in ("name", "params", "features", "input", "weights here", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"],
            f"{r['params'] / 1e6:.1f}M",
            str(r["feature_dim"]),
            str(r["input_size"]),
            "[green]yes[/]" if r["weights_local"] else "[yellow]no[/]",
            r["description"],
        )
    console.print(table)


@weights_app.command("import")
def weights_import(
    file: Annotated[
        Path, typer.Argument(help="A torchvision checkpoint, e.g. mobilenet_v2-b0353104.pth.")
    ],
) -> None:
    """Put a torchvision checkpoint where torchvision's own loader (and tlcv) find it.

    Example: tlcv weights import ~/Downloads/mobilenet_v2-b0353104.pth
    """
    from .backbones import get_backbone_spec, list_backbones
    from .backbones.weights import import_checkpoint

    dest = import_checkpoint(file)
    users = [
        n
        for n in list_backbones()
        for w in get_backbone_spec(n).weights
        if w.file_name == dest.name
    ]
    console.print(f"imported {esc(file)} -> {esc(dest)} (sha256 prefix verified)")
    if users:
        console.print(f"used by: {', '.join(users)}")
    else:
        console.print("[yellow]no registered backbone names this file; pass it with --weights[/]")


@weights_app.command("where")
def weights_where() -> None:
    """Print the folder pretrained checkpoints are looked up in (torch hub cache)."""
    from .backbones.weights import hub_checkpoint_dir

    print(hub_checkpoint_dir())


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
    """Train a classifier on an image folder and write a self-contained run folder.

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


RunArg = Annotated[Path, typer.Argument(help="Run folder written by `tlcv train`.")]
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


PathsArg = Annotated[list[Path], typer.Argument(help="Images and/or folders of images.")]


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
    from .runs import load_run
    from .tasks import task_of_run

    fmt, output = given["format"], given["output"]
    loaded = load_run(run)
    results = predict_api(loaded, [str(p) for p in paths], **given)
    if fmt == "json":
        text = json.dumps(results, indent=2) + "\n"
    else:
        buf = io.StringIO()
        csv.writer(buf).writerows(task_of_run(loaded).prediction_rows(results))
        text = buf.getvalue()
    if output:
        write_text(output, text)
        err.print(f"wrote {len(results)} predictions to {esc(output)}")
    else:
        sys.stdout.write(text)


@app.command("explain")
@config_command(
    ExplainConfig,
    extra=[
        positional("run", Annotated[Path, typer.Argument(help="Run of a classification task.")]),
        positional("paths", PathsArg),
    ],
)
def explain(ctx: typer.Context, given: dict, run: Path, paths: list[Path]) -> None:
    """Where the model looks: class-activation maps over the images, one PNG each (image |
    overlay, top classes in the title) and a grid; the layer comes from the backbone registry.

    Example: tlcv explain runs/photos img1.jpg more/ --out maps/ --method gradcam
    """
    from .api import explain as explain_api

    _need(given, "out")
    answers = explain_api(run, [str(p) for p in paths], **given)
    table = Table()
    for col in ("image", "map for", "top class", "file"):
        table.add_column(col)
    for a in answers:
        if "error" in a:
            table.add_row(esc(a["path"]), "", "", f"[red]{esc(a['error'])}[/]")
        elif "path" in a:
            top = a["top"][0]
            table.add_row(
                esc(Path(a["path"]).name),
                esc(a["target"]),
                esc(f"{top['label']} {top['score']:.3f}"),
                esc(a["file"]),
            )
    console.print(table)
    grid = next((a["grid"] for a in answers if "grid" in a), None)
    if grid:
        console.print(f"grid: {esc(grid)}")


@app.command("serve")
@config_command(ServeConfig, extra=[positional("run", RunArg)])
def serve(ctx: typer.Context, given: dict, run: Path) -> None:
    """A web page and HTTP API for a run: drop an image, see the top classes and where the
    model looked (segmentation runs: the mask). API: POST /predict, POST /explain, GET
    /metadata, GET /healthz; docs at /docs.

    Example: tlcv serve runs/photos --port 8000   (then open http://127.0.0.1:8000)
    """
    from .api import serve as serve_api

    options = ServeConfig.from_options(**given)
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        err.print(
            f"[yellow]warning:[/] binding {esc(options.host)}: the model is reachable from "
            "other machines, without authentication"
        )
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise TlcvError(
            "serving needs FastAPI and uvicorn", hint="pip install 'tlcv[serve]'"
        ) from exc
    console.print(f"serving {esc(run)} on http://{esc(options.host)}:{options.port} (Ctrl-C stops)")
    serve_api(run, **given)


@app.command("export")
@config_command(ExportConfig, extra=[positional("run", RunArg)])
def export(ctx: typer.Context, given: dict, run: Path) -> None:
    """Export a run as one ONNX file (runs without tlcv or torch), checked against PyTorch.

    Examples:
      tlcv export runs/photos
      tlcv export runs/photos --int8 --out photos.onnx
    """
    from .api import export as export_api

    report = export_api(run, **given)
    check = report["verification"]
    fp32 = check["onnxruntime_fp32"]
    console.print(f"wrote {esc(report['file'])} (exporter: {esc(report['exporter'])})")
    console.print(
        f"checked on {check['images']} images ({esc(report['checked_on'])}): max |logit "
        f"difference| {fp32['max_abs_logit_diff']:.2e}, top-1 agreement "
        f"{100 * fp32['top1_agreement']:.2f}%"
    )
    if given.get("int8"):
        q = check["onnxruntime_int8"]
        console.print(
            f"int8: {esc(report['int8_file'])}: {esc(report['int8_reason'])}; top-1 agreement "
            f"with PyTorch {100 * q['top1_agreement']:.2f}%"
        )


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
