"""``tlcv adapt``: domain adaptation from the command line (registered in tlcv.cli)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from .cli_common import (
    ConfigOpt,
    _merge,
    _need,
    console,
    err,
    esc,
)
from .cli_options import config_command, keyword
from .config import AdaptConfig


def method_names() -> list[str]:
    """The registered adaptation methods, read from their files (importing them would import
    torch before --help answers); tests/test_registry.py compares them with METHODS."""
    from pathlib import Path

    from .registry import declared_names

    folder = Path(__file__).parent / "adaptation" / "methods"
    return ["source-only", *declared_names(folder, "register_method")]  # the base class


@config_command(
    AdaptConfig,
    names={"method": method_names},
    extra=[
        keyword("json_out", Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")],
                False),
        keyword("config", ConfigOpt),
    ],
)  # fmt: skip
def adapt(ctx: typer.Context, given: dict, json_out: bool = False, config=None) -> None:
    """Adapt a model from a labelled source to an unlabelled target domain.

    Examples:
      tlcv adapt --source office31/amazon --target office31/webcam --method cdan \\
          --backbone mobilenet_v2 --mode frozen --out runs/a2w
      tlcv adapt --source digits/usps/train --target digits/mnist/train --method cdan \\
          --backbone lenet --mode full --augment none --optimizer sgd --lr 0.01 --out runs/u2m
      tlcv evaluate runs/a2w --data office31/webcam --json
    """
    resume = given.pop("resume")
    from .api import adapt as adapt_api
    from .api import resume_adapt

    progress = sys.stderr.isatty() and not json_out
    if resume:
        run = resume_adapt(resume, progress=progress)
    else:
        v = _merge(ctx, config, given)
        _need(v, "source", "target", "out")
        run = adapt_api(v.pop("source"), v.pop("target"), v.pop("out"), progress=progress, **v)
    if run is None:
        return
    metrics = run.metrics
    if json_out:
        print(json.dumps(metrics))
        return
    table = Table(title=esc(f"{run.info['backbone']} + {run.info['method']} -> {run.path}"))
    # the columns of the scores the run holds: a classifier's, or a segmentation's (mIoU)
    dense = "miou" in (metrics.get("source") or {})
    columns = (
        (
            ("mIoU", "miou"),
            ("pixel acc.", "pixel_accuracy"),
            ("mean class acc.", "mean_class_accuracy"),
        )
        if dense
        else (
            ("accuracy", "accuracy"),
            ("balanced acc.", "balanced_accuracy"),
            ("macro-F1", "macro_f1"),
        )
    )
    table.add_column("domain")
    table.add_column("pixels" if dense else "images")
    for label, _ in columns:
        table.add_column(label)
    rows = [
        ("source", "source (held out)"),
        ("target", "target"),
        ("init_target", "target, --init model"),
    ]
    for name, label in rows:
        m = metrics.get(name)
        if m:
            table.add_row(
                label, str(m.get("pixels", m.get("n"))), *(f"{m[key]:.3f}" for _, key in columns)
            )
    console.print(table)
    gap = metrics.get("domain_gap")
    if gap:
        console.print(
            f"proxy A-distance: {gap['proxy_a_distance_before']:.3f} before, "
            f"{gap['proxy_a_distance_after']:.3f} after"
        )
    health = metrics.get("health")
    if health:
        adapted, ref = health["adapted"], health.get("source_only")
        line = (
            f"target check (no labels): top class takes {100 * adapted['top_share']:.0f}% of "
            f"predictions, KL to the source class mix {adapted['kl_to_source_prior']:.2f}"
        )
        if ref:
            line += (
                f" (source-only {ref['kl_to_source_prior']:.2f}), agreement with source-only "
                f"{100 * health['agreement_with_source_only']:.0f}%"
            )
        vote = health.get("arbiter")
        if vote and vote["disagreements"]:
            line += (
                f"; where they disagree ({vote['disagreements']}), the neighbours side with "
                f"the adapted model {vote['sides_with_adapted']}, with source-only "
                f"{vote['sides_with_source_only']} (estimated {100 * vote['estimated_gain']:+.1f} "
                "points)"
            )
        console.print(line)
        for reason in health.get("reasons", []):
            err.print(f"[bold red]warning:[/] adaptation probably hurt: {esc(reason)}")
        if health.get("reasons") and health.get("kept") != "source-only":
            err.print(
                "[red]the adapted model was kept (--fallback none); rerun without it to keep "
                "the source-only model instead[/]"
            )
    if "oracle" in metrics:
        o = metrics["oracle"]
        score = o.get("target_accuracy", o.get("target_miou"))
        console.print(
            f"[magenta]ORACLE[/] (epoch chosen on target labels, not honest): "
            f"{score:.3f} at epoch {o['best_epoch']}"
        )
    if run.notes:
        err.print("[yellow]notes:[/]\n" + esc("".join(f"- {n}\n" for n in run.notes).strip()))
