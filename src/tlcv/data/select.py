"""Choosing files by name: one data set often holds two domains (CamVid's file names keep the
video sequence, ``0001TP_*`` filmed at dusk), so `tlcv adapt` takes file-name patterns
instead of asking users to copy files into new folders."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import TypeVar

from ..errors import TlcvError

T = TypeVar("T")


def parse_patterns(spec: str | None) -> list[str]:
    """``'0006R0_*, 0016E5_*'`` -> ["0006R0_*", "0016E5_*"]; None or blank -> []."""
    return [p.strip() for p in (spec or "").split(",") if p.strip()]


def matching(items: Sequence[T], spec: str | None, what: str) -> list[int]:
    """Indices of the items (``.path``) whose file name matches a pattern of ``spec`` (all
    when ``spec`` is empty); none matching is an error that names the patterns."""
    patterns = parse_patterns(spec)
    if not patterns:
        return list(range(len(items)))
    kept = [
        i for i, it in enumerate(items) if any(fnmatch(Path(it.path).name, p) for p in patterns)
    ]
    if not kept:
        example = Path(items[0].path).name if items else "none"
        raise TlcvError(
            f"no {what} file name matches {', '.join(patterns)}",
            hint=f"patterns match file names (shell-style: * and ?), e.g. {example}",
        )
    return kept
