"""Reading files someone else wrote (annotation lists, COCO JSON, YAML, label text) without
trusting them: paths stay inside the data folder, JSON and YAML are bounded in size and depth
before they are parsed, text must be UTF-8, numbers must be finite. Each refusal names the
file (and the line or field) and says what to do."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import TlcvError

MAX_JSON_BYTES = 1 << 30  # 1 GiB: a COCO file with ~8 M boxes; larger ones are refused
MAX_DEPTH = 64  # COCO nests 4 levels; nothing a tool writes comes near this
MAX_LENIENT_BYTES = 1 << 27  # 128 MiB: a NaN-bearing file is parsed whole
MAX_YAML_BYTES = 1 << 20  # data.yaml names classes: a megabyte is thousands of them
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CHUNK = 1 << 24


def inside(path: Path, root: Path) -> bool:
    """Whether ``path``, links followed, lies within ``root``."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop
        return False


def outside_reason(path: Path, root: Path, allow: bool) -> str | None:
    """Why an annotation's image path may not be used (it leaves the data folder), or None."""
    if allow or inside(path, root):
        return None
    return (
        f"{path} is outside the data folder {root} (absolute, '..' or a link); skipped "
        "(pass --allow-outside-data if it is meant to be used)"
    )


def finite(value: Any, what: str) -> float:
    """``value`` as a finite float; ValueError saying which field otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} is {type(value).__name__}, not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"{what} is {str(value)[:40]!r}, not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} is {number}, not a finite number")
    return number


def read_utf8(file: Path) -> str:
    """The file's text; a file that is not UTF-8 is a one-line error naming it."""
    try:
        return Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TlcvError(
            f"{file} is not UTF-8 text (byte {exc.start}: {exc.reason})",
            path=str(file),
            hint="save it as UTF-8 (most editors: 'Save with encoding')",
        ) from exc
    except OSError as exc:
        raise TlcvError(f"cannot read {file}: {exc.strerror}", path=str(file)) from exc


def json_shape(file: Path) -> tuple[int, bool]:
    """The deepest nesting of ``[``/``{`` in a JSON file and whether it holds Python's
    non-standard numbers (NaN, Infinity), strings ignored, read in chunks: the parser recurses
    once per level (200,000 levels would end in a RecursionError), and a streaming parser
    rejects NaN, which Python's json.dump writes for float('nan')."""
    depth = deepest = 0
    nonstandard = False
    carry = b""
    with open(file, "rb") as fh:
        while block := fh.read(_CHUNK):
            block = carry + block
            # a string cut by the chunk's end is carried into the next chunk
            cut = block.rfind(b'"')
            if block.count(b'"') % 2 and cut >= 0:
                block, carry = block[:cut], block[cut:]
            else:
                carry = b""
            bare = _STRING.sub(b"", block)
            # outside strings JSON has only true / false / null and numbers: no capital letters
            nonstandard = nonstandard or b"N" in bare or b"I" in bare
            codes = np.frombuffer(bare, dtype=np.uint8)
            steps = ((codes == ord("[")) | (codes == ord("{"))).astype(np.int32) - (
                (codes == ord("]")) | (codes == ord("}"))
            ).astype(np.int32)
            if steps.size:
                running = np.cumsum(steps) + depth
                deepest = max(deepest, int(running.max()))
                depth = int(running[-1])
    return deepest, nonstandard


def _checked_json(file: Path, what: str) -> tuple[int, bool]:
    """Size, nesting and dialect of a JSON file someone else wrote, before it is parsed."""
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise TlcvError(f"cannot read {file}: {exc.strerror}", path=str(file)) from exc
    if size > MAX_JSON_BYTES:
        raise TlcvError(
            f"{file} is {size / 1e6:.0f} MB, over tlcv's {MAX_JSON_BYTES / 1e6:.0f} MB limit "
            f"for a {what}",
            path=str(file),
            hint="split it into several files (one per split or per image folder)",
        )
    depth, nonstandard = json_shape(file)
    if depth > MAX_DEPTH:
        raise TlcvError(
            f"{file} nests {depth} levels deep; a {what} needs a handful (limit {MAX_DEPTH})",
            path=str(file),
            hint="this is not an annotation file tlcv can read; check where it came from",
        )
    return size, nonstandard


def load_json(file: Path, what: str = "JSON file") -> Any:
    """Parse a JSON file someone else wrote, after checking its size and nesting."""
    file = Path(file)
    _checked_json(file, what)
    try:
        return json.loads(read_utf8(file))
    except ValueError as exc:
        raise TlcvError(f"{file} is not valid JSON: {exc}", path=str(file)) from exc


_KINDS = {"start_map": dict, "start_array": list, "string": str, "boolean": bool,
          "null": type(None), "integer": int, "double": float, "number": float}  # fmt: skip


def stream_json(
    file: Path, whole: tuple[str, ...], streamed: str, what: str = "JSON file"
) -> dict[str, Any] | type:
    """A JSON object's top-level keys, parsed as they are read (ijson) so a file of millions of
    records never lives in memory whole: ``whole`` keys built as values (small tables),
    ``streamed`` as an iterator over its list's items. A missing key is None; a ``streamed``
    key that is not a list is given as its type for the caller to name, and a top level that is
    not an object is returned as its type.

    A file with NaN / Infinity (Python's dialect, which a streaming parser refuses) is parsed
    whole instead when it is at most MAX_LENIENT_BYTES."""
    file = Path(file)
    size, nonstandard = _checked_json(file, what)
    if nonstandard:
        if size > MAX_LENIENT_BYTES:
            raise TlcvError(
                f"{file} holds NaN or Infinity, which JSON does not allow, and is too large "
                f"({size / 1e6:.0f} MB) to read in Python's lenient dialect",
                path=str(file),
                hint="write null for missing numbers, or drop the records that hold them",
            )
        data = load_json(file, what)
        if not isinstance(data, dict):
            return type(data)
        return {key: data.get(key) for key in (*whole, streamed)}
    import ijson

    top = _kind_of(file, "")
    if top is not dict:
        return top
    out: dict[str, Any] = {}
    for key in whole:
        with open(file, "rb") as fh, _as_error(file):
            out[key] = next(ijson.items(fh, key, use_float=True), None)
    kind = _kind_of(file, streamed)
    out[streamed] = _stream_items(file, streamed) if kind is list else kind
    return out


class _as_error:
    """ijson's parse errors as one-line TlcvErrors naming the file."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> None:
        import ijson

        if exc is not None and isinstance(exc, ijson.JSONError | ijson.IncompleteJSONError):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "truncated"
            raise TlcvError(f"{self.file} is not valid JSON: {first}", path=str(self.file),
                            hint="check that the file was written completely") from exc  # fmt: skip


def _kind_of(file: Path, key: str) -> type | None:
    """The type of the top-level value (key "") or of a top-level key's value, None when the
    key is absent; events are read only up to the key."""
    import ijson

    with open(file, "rb") as fh, _as_error(file):
        for prefix, event, value in ijson.parse(fh):
            if prefix == key and event in _KINDS:
                return int if isinstance(value, int) and event == "number" else _KINDS[event]
    return None


def _stream_items(file: Path, key: str) -> Iterator[Any]:
    import ijson

    with open(file, "rb") as fh, _as_error(file):
        yield from ijson.items(fh, f"{key}.item", use_float=True)


def load_yaml(file: Path) -> Any:
    """safe_load of a small YAML file (no tags that build Python objects, bounded size)."""
    import yaml

    file = Path(file)
    if file.stat().st_size > MAX_YAML_BYTES:
        raise TlcvError(
            f"{file} is over {MAX_YAML_BYTES // 1024} KB; a class list needs far less",
            path=str(file),
        )
    try:
        return yaml.safe_load(read_utf8(file))
    except (yaml.YAMLError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise TlcvError(
            f"{file} is not plain YAML tlcv can read: {first}",
            path=str(file),
            hint="write the class names as a list: names: [cat, dog]",
        ) from exc
