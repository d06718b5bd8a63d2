"""Pieces every ``tlcv`` sub-command shares: consoles, option types, config merging."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .errors import TlcvError

console = Console()
err = Console(stderr=True)


def esc(value: object) -> str:
    """User data (paths, class names) printed literally, never read as rich markup."""
    return escape(str(value))


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help="YAML file; keys match the flags (flags given on the command line win)."
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Image folder (CLASS/*.jpg, optional train/ val/ test/), CSV manifest or .npz.",
    ),
]
BackboneOpt = Annotated[
    str | None,
    typer.Option(
        "--backbone",
        help="Registry name (see `tlcv models`) or timm:<model>. [default: efficientnet_lite0]",
    ),
]
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="'imagenet' (default source), 'none' (random) or a .pth/.pt/.safetensors file.",
    ),
]
ImageSizeOpt = Annotated[
    int | None,
    typer.Option("--image-size", help="Input size in pixels (default: the backbone's own)."),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache", help="Feature cache folder [default: $TLCV_CACHE or ~/.cache/tlcv/features]."
    ),
]
WorkersOpt = Annotated[
    int | None, typer.Option("--num-workers", help="Decoding processes [default: by CPU count].")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]


def _merge(
    ctx: typer.Context, config: Path | None, values: dict[str, Any], extra: set[str] = frozenset()
) -> dict[str, Any]:
    """Values from ``--config`` fill every option the user did not type on the command line.

    ``extra``: keys the file may hold beyond the command's own options (passed through).
    """
    if config is None:
        return values
    from .config import read_config_file

    from_file = read_config_file(config, set(values) | set(extra))
    merged = dict(values)
    for key, value in from_file.items():
        source = ctx.get_parameter_source(key)
        # typer vendors its own click: compare the source by name, not by enum identity.
        if getattr(source, "name", "DEFAULT") in ("DEFAULT", "DEFAULT_MAP"):
            merged[key] = value
    return merged


def _max_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports kB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _need(values: dict, *keys: str) -> None:
    for key in keys:
        if values.get(key) in (None, ""):
            raise TlcvError(
                f"missing --{key.replace('_', '-')}",
                hint=f"give it on the command line or as '{key}:' in --config",
            )


RunArg = Annotated[Path, typer.Argument(help="Run folder written by `tlcv train`.")]
PathsArg = Annotated[list[Path], typer.Argument(help="Images and/or folders of images.")]
