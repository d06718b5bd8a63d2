"""``tlcv adapt``: domain adaptation from the command line (registered in tlcv.cli)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from .cli_common import (
    BackboneOpt,
    CacheOpt,
    ConfigOpt,
    DeviceOpt,
    ImageSizeOpt,
    StrictOpt,
    WeightsOpt,
    WorkersOpt,
    _merge,
    _need,
    console,
    err,
    esc,
)


def adapt(
    ctx: typer.Context,
    source: Annotated[
        str | None, typer.Option("--source", help="Labelled source images (CLASS/ folders).")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Target images. Class folders optional; their labels are read only for the "
            "final evaluation.",
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="source-only, dann, cdan, cdan+e, dan, coral, mcc, adabn, self-training; "
            "combine with + (dann+mcc).",
        ),
    ] = "source-only",
    backbone: BackboneOpt = None,
    weights: WeightsOpt = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="frozen (bottleneck + classifier on cached features, fast) or full (backbone "
            "trained too, at the reduced fine-tuning lr).",
        ),
    ] = "frozen",
    out: Annotated[str | None, typer.Option("--out", help="Run folder to write.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    epochs: Annotated[int, typer.Option("--epochs")] = 20,
    lr: Annotated[float, typer.Option("--lr", help="Head and discriminator lr.")] = 1e-3,
    backbone_lr_ratio: Annotated[
        float, typer.Option("--backbone-lr-ratio", help="Full mode: backbone lr / --lr.")
    ] = 0.1,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Images per domain per step.")
    ] = 32,
    bottleneck: Annotated[int, typer.Option("--bottleneck", help="Bottleneck width.")] = 256,
    trade_off: Annotated[
        float, typer.Option("--trade-off", help="Weight of the adaptation terms.")
    ] = 1.0,
    select: Annotated[
        str,
        typer.Option(
            "--select",
            help="Checkpoint choice without target labels: source-val (held-out source), "
            "entropy (target prediction entropy) or last.",
        ),
    ] = "source-val",
    oracle: Annotated[
        bool,
        typer.Option(
            "--oracle",
            help="Also report the best epoch on target labels, labelled ORACLE (not honest).",
        ),
    ] = False,
    fallback: Annotated[
        str,
        typer.Option(
            "--fallback",
            help="none (warn only) or source-only (keep the source-only model) when the "
            "label-free check says the adaptation probably hurt (collapsed or drifted target "
            "predictions).",
        ),
    ] = "none",
    optimizer: Annotated[
        str, typer.Option("--optimizer", help="adamw, or sgd (momentum 0.9; digits: --lr 0.01).")
    ] = "adamw",
    augment: Annotated[
        str, typer.Option("--augment", help="Full mode: none, light or strong.")
    ] = "light",
    image_size: ImageSizeOpt = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="t-SNE picture.")] = True,
    num_workers: WorkersOpt = None,
    cache: CacheOpt = None,
    device: DeviceOpt = "auto",
    strict: StrictOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue an interrupted adapt run.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Adapt a model from a labelled source to an unlabelled target domain.

    Examples:
      tlcv adapt --source office31/amazon --target office31/webcam --method cdan \\
          --backbone mobilenet_v2 --mode frozen --out runs/a2w
      tlcv adapt --source digits/usps/train --target digits/mnist/train --method cdan \\
          --backbone lenet --mode full --augment none --optimizer sgd --lr 0.01 --out runs/u2m
      tlcv evaluate runs/a2w --data office31/webcam --json
    """
    given = {k: v for k, v in locals().items() if k not in ("ctx", "config", "resume", "json_out")}
    from .api import adapt as adapt_api
    from .api import resume_adapt

    progress = sys.stderr.isatty() and not json_out
    if resume:
        run = resume_adapt(resume, progress=progress)
    else:
        v = _merge(ctx, config, given)
        _need(v, "source", "target", "out")
        from .backbones import DEFAULT_BACKBONE

        v["backbone"] = v["backbone"] or DEFAULT_BACKBONE
        v["weights"] = v["weights"] or "imagenet"
        run = adapt_api(v.pop("source"), v.pop("target"), v.pop("out"), progress=progress, **v)
    if run is None:
        return
    metrics = run.metrics
    if json_out:
        print(json.dumps(metrics))
        return
    table = Table(title=esc(f"{run.info['backbone']} + {run.info['method']} -> {run.path}"))
    for col in ("domain", "images", "accuracy", "balanced acc.", "macro-F1"):
        table.add_column(col)
    for name, label in (("source", "source (held out)"), ("target", "target")):
        m = metrics.get(name)
        if m:
            table.add_row(
                label,
                str(m["n"]),
                f"{m['accuracy']:.3f}",
                f"{m['balanced_accuracy']:.3f}",
                f"{m['macro_f1']:.3f}",
            )
    console.print(table)
    gap = metrics["domain_gap"]
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
        console.print(line)
        for reason in health.get("reasons", []):
            err.print(f"[bold red]warning:[/] adaptation probably hurt: {esc(reason)}")
        if health.get("reasons") and health.get("kept") != "source-only":
            err.print(
                "[red]the adapted model was kept; rerun with --fallback source-only to keep the "
                "source-only model instead[/]"
            )
    if "oracle" in metrics:
        o = metrics["oracle"]
        console.print(
            f"[magenta]ORACLE[/] (epoch chosen on target labels, not honest): "
            f"{o['target_accuracy']:.3f} at epoch {o['best_epoch']}"
        )
    if run.notes:
        err.print("[yellow]notes:[/]\n" + esc("".join(f"- {n}\n" for n in run.notes).strip()))
