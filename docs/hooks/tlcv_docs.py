"""MkDocs hooks: the CLI reference is generated from the commands themselves at build time
(never retyped), and the gallery's pictures (written by docs/gallery.py outside the
repository: the data sets' licences forbid redistributing them) are added to the site."""

from __future__ import annotations

import os
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

GALLERY_ENV = "TLCV_GALLERY"  # where docs/gallery.py wrote its pictures
DEFAULT_GALLERY = Path(__file__).resolve().parents[2] / "build" / "gallery"


def gallery_dir() -> Path:
    return Path(os.environ.get(GALLERY_ENV, DEFAULT_GALLERY))


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _command_rows(command, path: str) -> list[str]:
    """Markdown for one command (and, for groups, each subcommand after it), from the same
    help records `--help` prints."""
    lines = [f"## `{path}`", ""]
    help_text = (command.help or "").strip()
    if help_text:
        lines += ["```text", help_text, "```", ""]
    ctx = command.context_class(command, info_name=path.split()[-1])
    rows = []
    for param in command.params:
        record = None if getattr(param, "hidden", False) else param.get_help_record(ctx)
        if record:
            usage, text = record
            panel = getattr(param, "rich_help_panel", None) or ""
            rows.append(f"| `{usage}` | {_cell(text.replace(chr(92) + '[', '['))} | {panel} |")
    if rows:
        lines += ["| option / argument | what it does | group |", "|---|---|---|", *rows, ""]
    for name in sorted(getattr(command, "commands", {})):
        lines += _command_rows(command.commands[name], f"{path} {name}")
    return lines


def cli_reference() -> str:
    """Every `tlcv` command and option, read from the typer app."""
    import typer

    from tlcv.cli import app

    root = typer.main.get_command(app)
    lines = ["# CLI reference", "",
             "Generated from the commands themselves when the site is built; "
             "`tlcv COMMAND --help` prints the same.", ""]  # fmt: skip
    lines += _command_rows(root, "tlcv")  # its own options, then every command
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    gallery = gallery_dir()
    if gallery.is_dir():
        for picture in sorted(gallery.rglob("*")):
            if picture.is_file():
                uri = "gallery/" + picture.relative_to(gallery).as_posix()
                files.append(File.generated(config, uri, abs_src_path=str(picture)))
    return files
