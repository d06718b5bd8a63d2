"""The one registry helper every name -> thing table uses."""

from __future__ import annotations

import pytest

from tlcv.adaptation.methods import METHODS
from tlcv.backbones import list_backbones
from tlcv.backbones.registry import BACKBONES
from tlcv.errors import TlcvError
from tlcv.experiments import EXPERIMENTS
from tlcv.heads.classifiers import CLASSIFIERS
from tlcv.models import MODEL_KINDS
from tlcv.registry import Registry
from tlcv.tasks.classification import STRATEGIES

NEEDS_SHARED = False

ALL = {
    "backbone": BACKBONES,
    "strategy": STRATEGIES,
    "adaptation method": METHODS,
    "classifier": CLASSIFIERS,
    "experiment": EXPERIMENTS,
    "model kind": MODEL_KINDS,
}


def test_a_second_registration_under_a_taken_name_is_refused():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="widget 'a' registered twice"):
        reg.register("a")(2)
    assert reg.get("a") == 1


@pytest.mark.parametrize("kind", list(ALL))
def test_every_registry_refuses_duplicates_and_names_its_entries(kind):
    reg = ALL[kind]
    names = reg.names()
    assert names, f"nothing registered as a {kind}"
    with pytest.raises(ValueError, match="registered twice"):
        reg.add(names[0], reg.get(names[0]))
    with pytest.raises(TlcvError) as info:
        reg.get("no-such-thing")
    message = str(info.value)
    assert f"unknown {kind} 'no-such-thing'" in message
    assert all(name in message for name in names[:3])


def test_registries_load_their_modules_on_first_use():
    assert {"features", "finetune", "scratch", "classical"} <= set(STRATEGIES.names())
    assert {"data-efficiency", "convergence", "generalization"} <= set(EXPERIMENTS.names())
    assert {"dann", "cdan", "dan", "mcc", "source-only"} <= set(METHODS.names())
    assert "mobilenet_v2" in list_backbones()
    assert {"classification", "sequence", "segmentation", "detection"} <= set(MODEL_KINDS.names())


def test_help_lists_the_methods_the_registry_holds():
    from tlcv.cli_adapt import method_names

    assert sorted(method_names()) == METHODS.names()


def _imports(path, module: str) -> set[str]:
    """tlcv modules a module imports anywhere (top level, inside functions, under
    TYPE_CHECKING), as dotted names: the layers import downwards only, lazily or not."""
    import ast

    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.startswith("tlcv"):
                target = node.module
            else:
                continue
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tlcv"))
    return found


def test_no_import_cycles_between_modules():
    """No module imports (at any depth) one that imports it back, except a package's own
    submodules importing the package (the registration pattern)."""
    from pathlib import Path

    import tlcv

    root = Path(tlcv.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = path
    graph = {
        name: {m for m in _imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }
    # a submodule importing its own package is how registries fill: not a cycle
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    seen, stack, cycles = set(), [], []

    def visit(node):
        if node in stack:
            cycles.append(stack[stack.index(node) :] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for dep in sorted(graph[node]):
            visit(dep)
        stack.pop()

    for name in sorted(graph):
        visit(name)
    assert not cycles, cycles[:3]


def test_the_version_is_declared_once():
    from pathlib import Path

    import tomllib

    from tlcv._version import __version__

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["version"] == __version__
