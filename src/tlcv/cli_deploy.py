"""`tlcv explain`, `tlcv serve`, `tlcv export`: what a trained run is used for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .cli_common import PathsArg, RunArg, _need, console, err, esc
from .cli_options import config_command, positional
from .config_deploy import ExplainConfig, ExportConfig, ServeConfig
from .errors import TlcvError


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


@config_command(ServeConfig, extra=[positional("run", RunArg)])
def serve(ctx: typer.Context, given: dict, run: Path) -> None:
    """A web page and HTTP API for a run: drop an image, see the top classes and where the
    model looked (segmentation runs: the mask). API: POST /predict, POST /explain, GET
    /metadata, GET /healthz; docs at /docs.

    Example: tlcv serve runs/photos --port 8000   (then open http://127.0.0.1:8000)
    """
    from .api import serve as serve_api

    options = ServeConfig.from_options(**given)
    keyed = bool(options.api_key or os.environ.get("TLCV_API_KEY"))
    if options.host not in ("127.0.0.1", "localhost", "::1") and options.insecure and not keyed:
        err.print(
            f"[yellow]warning:[/] binding {esc(options.host)}: the model is reachable from "
            "other machines, without authentication (--insecure)"
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


@config_command(ExportConfig, extra=[positional("run", RunArg)])
def export(ctx: typer.Context, given: dict, run: Path) -> None:
    """Export a run as one ONNX file (runs without tlcv or torch), checked against PyTorch.

    Examples:
      tlcv export runs/photos
      tlcv export runs/photos --int8 --out photos.onnx
    """
    from .api import export as export_api

    report = export_api(run, **given)
    console.print(f"wrote {esc(report['file'])} (exporter: {esc(report['exporter'])})")
    if report.get("summary"):  # a task that exports itself says what its check found
        console.print(esc(report["summary"]))
        return
    check = report["verification"]
    fp32 = check["onnxruntime_fp32"]
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
