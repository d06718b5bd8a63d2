"""Command-line flags built from the config dataclasses (tlcv/config.py), so an option's
default, help and choices are written once, on its field, and a command hands the API one
config object instead of its ``locals()``."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from .options import choices_of

TASK_PANEL = "(--task "  # a task's options panel ends "(--task NAME)" (tasks/<name>/options.py)


class TaskHelpCommand(TyperCommand):
    """`tlcv train --task NAME --help` lists the shared options and NAME's only; without
    --task, every task's options, each task in its own panel."""

    def parse_args(self, ctx, args):  # noqa: ANN001 - click's signature
        ctx.meta["tlcv_task"] = _task_named(args)  # before --help's eager callback runs
        return super().parse_args(ctx, args)

    def get_params(self, ctx):  # noqa: ANN001
        params = super().get_params(ctx)
        task = ctx.meta.get("tlcv_task")
        if not task:
            return params
        own = f"{TASK_PANEL}{task})"
        return [
            p for p in params
            if TASK_PANEL not in (getattr(p, "rich_help_panel", None) or "")
            or own in p.rich_help_panel
        ]  # fmt: skip


def _task_named(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg == "--task" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--task="):
            return arg.split("=", 1)[1]
    return None


def config_parameters(
    config_cls: type,
    skip: set[str] = frozenset(),
    names: dict[str, Callable[[], list[str]]] | None = None,
) -> list[inspect.Parameter]:
    """One keyword parameter per field: ``Annotated[type, typer.Option(...)] = default``.

    ``names``: for fields whose values are a registry's names (``task``), where the help
    lists them from; the registry itself refuses an unknown one.

    Required fields (``--data``) default to None here: they may come from --config or, for
    --resume, from the saved run; the command checks they are there.
    """
    hints = typing.get_type_hints(config_cls)
    params = []
    for f in fields(config_cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        kind = hints[f.name]
        default = None if f.default is MISSING else f.default
        if f.default is MISSING or default is None:
            kind = kind | None if kind is not type(None) else kind
        help_text = f.metadata.get("help", "")
        allowed = choices_of(f) or (names[f.name]() if names and f.name in names else None)
        if allowed and not all(c in help_text for c in allowed):
            help_text += f" Choices: {', '.join(allowed)}."
        help_text = help_text.replace("[", "\\[")  # rich would read "[default: x]" as markup
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        panel = f.metadata.get("panel")
        annotation = Annotated[
            kind, typer.Option(flag, help=help_text, show_default=True, rich_help_panel=panel)
        ]
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )  # fmt: skip
        )
    return params


def config_command(
    config_cls: type,
    *,
    extra: list[inspect.Parameter] = (),
    skip: set[str] = frozenset(),
    names: dict[str, Callable[[], list[str]]] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn ``body(ctx, options: dict, **extra)`` into a typer command with a flag for every
    field of ``config_cls`` (besides ``extra`` parameters such as --config or --json); register
    the result with ``app.command(NAME)``. ``options`` holds every field's value, as typed or
    defaulted, keyed by field name."""
    option_params = config_parameters(config_cls, skip, names)
    option_names = {p.name for p in option_params}
    ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                  annotation=typer.Context)  # fmt: skip

    def build(body: Callable[..., None]) -> Callable[..., None]:
        def command(ctx: typer.Context, **values: Any) -> None:
            options = {k: v for k, v in values.items() if k in option_names}
            others = {k: v for k, v in values.items() if k not in option_names}
            body(ctx, options, **others)

        params = [ctx_param, *extra, *option_params]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__doc__ = body.__doc__
        command.__name__ = command.__qualname__ = body.__name__
        return command

    return build


def keyword(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    """An extra command parameter beside the config's fields (``--config``, ``--json``)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


def positional(name: str, annotation: Any) -> inspect.Parameter:
    """A command argument (``RUN``, ``PATHS...``) beside the config's fields."""
    return inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
