"""One registry helper for every name -> thing table in tlcv (backbones, strategies, tasks,
adaptation methods, classifiers, experiments).

Why one: the CLI's help and error messages list names from the registries, tests are
parametrized over them, and a second registration under a taken name is refused the same
way everywhere (a plug-in that silently replaced a built-in would change results unnoticed).
Torch-free, so the CLI can import it before a command runs.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from .errors import TlcvError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name; ``load`` imports the modules that register themselves, on first use."""

    def __init__(self, kind: str, *, load: Callable[[], None] | None = None, hint: str = ""):
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T] = {}
        self._load = load
        self._loaded = load is None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True  # before loading: modules that register call back in here
            assert self._load is not None
            self._load()

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        """Drop an entry (a test's temporary registration)."""
        self._entries.pop(name, None)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@STRATEGIES.register("finetune")``."""

        def wrap(entry: T) -> T:
            return self.add(name, entry)

        return wrap

    def get(self, name: str) -> T:
        self._ensure_loaded()
        if name not in self._entries:
            hint = f"choose one of: {', '.join(self.names())}" + (
                f"; {self.hint}" if self.hint else ""
            )
            raise TlcvError(f"unknown {self.kind} {name!r}", hint=hint)
        return self._entries[name]

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self._ensure_loaded()
        return sorted(self._entries.items())


def import_submodules(package: str, path: list[str]) -> Callable[[], None]:
    """A ``load`` for a package whose every module registers something (one file each)."""

    def load() -> None:
        for info in pkgutil.iter_modules(path):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")

    return load


def import_module_later(name: str) -> Callable[[], None]:
    """A ``load`` that imports one module (a task's strategies) the first time it is asked."""

    def load() -> None:
        importlib.import_module(name)

    return load


def declared_names(folder: str | Path, decorator: str) -> list[str]:
    """Names registered with ``@decorator("name")`` in the modules of ``folder``, read from
    their source without importing them: help text that needs no torch. tests/test_registry.py
    checks it against the loaded registry, so it cannot drift."""
    names = []
    for file in sorted(Path(folder).glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            for deco in getattr(node, "decorator_list", []):
                if (
                    isinstance(deco, ast.Call)
                    and getattr(deco.func, "id", getattr(deco.func, "attr", None)) == decorator
                    and deco.args
                    and isinstance(deco.args[0], ast.Constant)
                ):
                    names.append(str(deco.args[0].value))
    return names
