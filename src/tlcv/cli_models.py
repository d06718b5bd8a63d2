"""`tlcv models` and `tlcv weights`: the backbone registry and offline weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .cli_common import console, esc

weights_app = typer.Typer(help="Manage pretrained weights for offline use.", no_args_is_help=True)


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
