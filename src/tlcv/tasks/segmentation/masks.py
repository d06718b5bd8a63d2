"""Class tables and mask files: how a mask's raw values (indices or RGB colours) become class
indices, the void rows, and two-class masks saved as 0/1 or 0/255 (read with or without a
table). data.py finds the pairs; this module reads what their masks mean.

Class tables (``read_classes``): ``classes.txt`` (one name per line, line i = mask value i) or
``classes.csv`` (``name,r,g,b``: RGB colour-coded masks), in DIR or its parent. Rows named
void / unlabelled / ignore mark void; so does ``--ignore-index`` (default 255).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import TlcvError

IGNORE = 255  # void pixels in the masks the model trains on (uint8)
VOID_NAMES = frozenset({"void", "unlabelled", "unlabeled", "ignore", "background-void"})


@dataclass
class MaskFormat:
    """How a mask file becomes class indices: a lookup of raw values (index masks) or colours
    (RGB masks) to class index / IGNORE; anything else is a bad mask."""

    classes: list[str]
    kind: str  # "index" or "rgb"
    lut: dict[int, int]  # raw value (index) or 0xRRGGBB (rgb) -> class index or IGNORE
    source: str  # the class table's path, or "" when classes were inferred

    def to_dict(self) -> dict:
        return {
            "classes": self.classes,
            "kind": self.kind,
            "source": self.source,
            "lut": {str(k): v for k, v in self.lut.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> MaskFormat:
        return cls(
            list(data["classes"]),
            str(data["kind"]),
            {int(k): int(v) for k, v in data["lut"].items()},
            str(data.get("source", "")),
        )

    def decode(self, path: str) -> np.ndarray:
        """Class indices (uint8, IGNORE for void); ValueError names what is wrong."""
        with Image.open(path) as img:
            img.load()
            if self.kind == "rgb":
                rgb = np.asarray(img.convert("RGB"), dtype=np.uint32)
                raw = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            else:
                if img.mode not in ("L", "P", "I", "I;16", "1"):
                    raise ValueError(
                        f"mask has {img.mode} pixels, not class indices (colour-coded masks "
                        "need a classes.csv with name,r,g,b)"
                    )
                raw = np.asarray(img, dtype=np.int64)
        values = np.unique(raw)
        unknown = [int(v) for v in values if int(v) not in self.lut]
        if unknown:
            shown = [f"#{v:06x}" if self.kind == "rgb" else str(v) for v in unknown[:5]]
            raise ValueError(
                f"mask value(s) {', '.join(shown)} are neither a class nor void"
                + (
                    f" (if {shown[0]} marks unlabelled pixels, pass --ignore-index {shown[0]})"
                    if self.kind == "index"
                    else " (add the colour to classes.csv)"
                )
            )
        table = np.zeros(int(values.max()) + 1, dtype=np.uint8)
        for v in values:
            table[int(v)] = self.lut[int(v)]
        return table[raw] if self.kind == "index" else _map_sparse(raw, values, self.lut)


def _map_sparse(raw: np.ndarray, values: np.ndarray, lut: dict[int, int]) -> np.ndarray:
    index = np.searchsorted(values, raw)
    return np.array([lut[int(v)] for v in values], dtype=np.uint8)[index]


def table_file(root: Path) -> Path | None:
    for folder in (root, root.parent):
        for name in ("classes.csv", "classes.txt"):
            if (folder / name).is_file():
                return folder / name
    return None


def read_classes(file: Path, ignore_index: int) -> MaskFormat:
    """The class table: names in mask-value order, void rows and ``ignore_index`` -> IGNORE."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TlcvError(f"cannot read the class table {file}: {exc}", path=str(file)) from exc
    lut: dict[int, int] = {ignore_index: IGNORE}
    classes: list[str] = []
    if file.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
        if rows and not (len(rows[0]) > 1 and rows[0][1].strip().isdigit()):
            rows = rows[1:]  # a header
        for line, row in enumerate(rows, start=1):
            try:
                name, r, g, b = (c.strip() for c in row[:4])
                colour = (int(r) << 16) | (int(g) << 8) | int(b)
            except ValueError as exc:
                raise TlcvError(
                    f"{file}, row {line}: expected name,r,g,b, got {','.join(row)!r}",
                    path=str(file),
                    hint="one class a row: name,r,g,b (0-255 each)",
                ) from exc
            lut[colour] = IGNORE if name.lower() in VOID_NAMES else _index(classes, name)
        kind = "rgb"
        lut.pop(ignore_index, None)  # an ignore *index* means nothing for colour masks
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for value, name in enumerate(names):
            if value != ignore_index:
                lut[value] = IGNORE if name.lower() in VOID_NAMES else _index(classes, name)
        kind = "index"
    if len(classes) < 1 or len(classes) >= IGNORE:
        raise TlcvError(
            f"{file} lists {len(classes)} classes; 1 to 254 are supported", path=str(file)
        )
    return MaskFormat(classes, kind, lut, str(file))


def _index(classes: list[str], name: str) -> int:
    if name not in classes:
        classes.append(name)
    return classes.index(name)


def binary_values(masks: list[Path]) -> int | None:
    """The foreground value (1 or 255) when the sampled masks are two-valued 0/1 or 0/255
    (lesion masks as most tools save them), else None."""
    seen: set[int] = set()
    for mask in masks:
        try:
            with Image.open(mask) as img:
                if img.mode not in ("L", "P", "1"):
                    return None
                seen |= {int(v) for v in np.unique(np.asarray(img.convert("L")))}
        except (OSError, ValueError):
            continue
    for value in (1, 255):
        if value in seen and seen <= {0, value}:
            return value
    return None


def binary_format(value: int) -> MaskFormat:
    return MaskFormat(["background", "foreground"], "index", {0: 0, value: 1}, "")


def adopt_binary(fmt: MaskFormat, value: int | None, table: Path | None) -> list[str]:
    """Two-class tables take 0/255 masks too: 255 becomes the foreground there, not void (0/255
    masks with no 1 anywhere in the sample cannot mean 'every lesion pixel is void')."""
    if table is None:
        return [f"no class table: 0/{value} masks read as background / foreground"]
    if value == 255 and fmt.kind == "index" and len(fmt.classes) == 2:
        fmt.lut[255] = 1
        return [f"masks hold 0/255: 255 read as {fmt.classes[1]!r} (two-class table)"]
    return []
