"""Every `tlcv ...` command the documentation shows (README.md and docs/, code blocks and
inline code) names a command that exists and only flags that command takes; each command's
--help runs. The site's pages include README sections, so both are the docs."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from conftest import cli_in_process

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
GLOBAL_FLAGS = {"--help", "--version", "--verbose", "--install-completion", "--show-completion"}
_INLINE = re.compile(r"`((?:\.venv/bin/)?tlcv [^`]+)`")


def _commands(text: str) -> list[str]:
    """Shell lines starting with tlcv (continuations joined) and inline `tlcv ...` spans."""
    found = [m.group(1) for m in _INLINE.finditer(text)]
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if re.match(r"^(\.venv/bin/)?tlcv ", line):
            while line.endswith("\\") and i + 1 < len(lines):
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            found.append(line)
        i += 1
    return found


def _documented() -> dict[str, str]:
    """command text -> where it appears (file:first words), one entry per distinct command."""
    out = {}
    for page in PAGES:
        for command in _commands(page.read_text()):
            out.setdefault(command, f"{page.relative_to(ROOT)}")
    return out


DOCUMENTED = _documented()


@cache
def _click_commands() -> dict[str, set[str]]:
    """'train' / 'weights import' -> every flag the command takes."""
    import typer

    from tlcv.cli import app

    table = {}

    def walk(command, path):
        flags = {o for p in command.params for o in (*getattr(p, "opts", ()),
                 *getattr(p, "secondary_opts", ())) if o.startswith("-")}  # fmt: skip
        table[path] = flags
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return table


def _parse(command: str) -> tuple[str, list[str]]:
    """(subcommand path, flags) of one documented command line."""
    words = shlex.split(command.split(" #")[0], comments=False)
    words = [w.strip("[]") for w in words[1:]]  # after tlcv; [--optional flags] unwrapped
    table = _click_commands()
    path = ""
    for word in words:
        if f"{path} {word}".strip() in table and not word.startswith("-"):
            path = f"{path} {word}".strip()
        else:
            break
    flags = [w.split("=")[0] for w in words if w.startswith("--")]
    return path, flags


@pytest.mark.parametrize("command", sorted(DOCUMENTED), ids=lambda c: c[:70])
def test_a_documented_command_exists_with_its_flags(command):
    path, flags = _parse(command)
    table = _click_commands()
    placeholder = re.search(r"tlcv ([A-Z]+)\b", command)
    if not path:
        assert placeholder or set(flags) <= GLOBAL_FLAGS, (
            f"{DOCUMENTED[command]}: `{command}` names no tlcv command"
        )
        return
    unknown = [f for f in flags if f not in table[path] | GLOBAL_FLAGS]
    assert not unknown, f"{DOCUMENTED[command]}: `{command}`: tlcv {path} has no {unknown}"


@pytest.mark.parametrize("path", sorted({_parse(c)[0] for c in DOCUMENTED} - {""}))
def test_each_documented_command_answers_help(path):
    done = cli_in_process(*path.split(), "--help")
    assert done.returncode == 0 and "Usage" in done.stdout


def test_the_docs_show_commands():
    """The extraction itself can fail: the README's quick start must be found."""
    assert any(c.startswith(".venv/bin/tlcv train --data") for c in DOCUMENTED)
    assert len({_parse(c)[0] for c in DOCUMENTED}) >= 10


def test_a_wrong_flag_or_command_would_be_caught():
    path, flags = _parse(".venv/bin/tlcv train --data x --no-such-flag 3")
    assert path == "train" and "--no-such-flag" not in _click_commands()["train"]
    assert _parse("tlcv trian --data x")[0] == ""  # a misspelt command names none


def test_the_generated_cli_reference_names_every_command_and_option():
    """The site's CLI page is generated from the typer app (docs/hooks/tlcv_docs.py)."""
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    from tlcv_docs import cli_reference

    page = cli_reference()
    for path, flags in _click_commands().items():
        if path:
            assert f"## `tlcv {path}`" in page
        for flag in flags - {"--help"}:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", page), (path, flag)
