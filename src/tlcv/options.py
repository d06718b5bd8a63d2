"""Declaring options once: a dataclass field carries its default, help, choices and help
panel; the CLI builds its flags from the fields (cli_options.py) and ``validate`` checks the
choices. The base of every config class (config.py) and of each task's own options
(``tasks/<name>/options.py``). Torch-free: the CLI imports it for --help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, field, fields
from pathlib import Path
from typing import Any

from .errors import TlcvError


def option(
    default: Any = MISSING,
    help: str = "",  # noqa: A002 - the word typer and click use
    *,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
    cli: bool = True,
    panel: str | None = None,
) -> Any:
    """A config field with what the CLI and validation need: ``choices`` the allowed values;
    ``flag`` overrides the flag spelling (e.g. "--plots/--no-plots"); ``cli=False`` keeps a
    field out of the command line; ``panel`` groups its flag in --help (a task's options)."""
    metadata = {"help": help, "choices": choices, "flag": flag, "cli": cli, "panel": panel}
    return field(default=default, metadata=metadata)


def panel_options(panel: str) -> Callable[..., Any]:
    """``option`` with its help panel set: a task's options file declares ``option =
    panel_options("Detection (--task detection)")`` once."""

    def task_option(*args: Any, **kwargs: Any) -> Any:
        return option(*args, panel=panel, **kwargs)

    return task_option


def choices_of(f: Field) -> list[str] | None:
    found = f.metadata.get("choices")
    return None if found is None else list(found)


class Validated:
    """``validate()``: every field with choices holds one of them (None: not chosen)."""

    def validate(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            allowed = choices_of(f)
            value = getattr(self, f.name)
            if allowed is not None and value is not None and value not in allowed:
                flag = "--" + f.name.replace("_", "-")
                raise TlcvError(
                    f"unknown {flag} {value!r}", hint=f"choose one of: {', '.join(allowed)}"
                )
        for cls in type(self).__mro__:  # each part's own checks (a task's options)
            if "check" in vars(cls):
                vars(cls)["check"](self)

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_options(cls, **values: Any):
        """A validated config from keyword options; unknown names are one clear error."""
        valid = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - valid)
        if unknown:
            raise TlcvError(
                f"unknown option(s): {', '.join(unknown)}",
                hint=f"valid: {', '.join(sorted(valid))}",
            )
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def resumed(cls, run_dir: Path, saved: dict, changed: dict | None = None):
        """The saved config of an interrupted run, writing where it is pointed (``run_dir``:
        a copied run folder never rewrites its original). An option in ``changed`` that
        differs from the saved value is refused: a resumed run must be the run it claims."""
        valid = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        changed = {k: v for k, v in (changed or {}).items() if k in valid and k != "resume"}
        differ = sorted(k for k, v in changed.items() if saved.get(k) != v)
        if differ:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {changed[k]!r}" for k in differ)
            raise TlcvError(
                f"refusing to resume with a changed configuration ({detail})",
                hint="drop those flags to resume as saved, or start a new run",
            )
        config = cls(**{k: v for k, v in saved.items() if k in valid})
        config.out = config.resume = str(run_dir)  # type: ignore[attr-defined]
        return config
