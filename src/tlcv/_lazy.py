"""Lazy package exports (PEP 562): a package names what it offers, modules load on first use.

Packages whose modules pull in torch, scikit-learn or Lightning use this in ``__init__`` so that
importing one light module (``tlcv.data.sources``, ``tlcv.catalog``) does not import the rest.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(
    package: str, namespace: dict, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a name to its module
    (relative, e.g. ``".loading"``). A loaded name is stored in ``namespace`` for next time."""
    return _accessors(package, namespace, exports)


def exports_by_module(
    package: str, namespace: dict, modules: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` of a package from ``{".module": "name1
    name2 ..."}``: what each module offers, one line a module."""
    exports = {name: module for module, names in modules.items() for name in names.split()}
    return (*_accessors(package, namespace, exports), sorted(exports))


def _accessors(
    package: str, namespace: dict, exports: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
