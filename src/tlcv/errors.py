"""User-facing errors: what is wrong, which file, and what to do about it."""

from __future__ import annotations


class TlcvError(Exception):
    """An error the user can fix. The CLI prints it without a traceback.

    ``hint`` says what to do; ``path`` names the offending file when there is one.
    """

    def __init__(self, message: str, *, hint: str | None = None, path: str | None = None):
        self.message = message
        self.hint = hint
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        text = self.message
        if self.path and self.path not in text:
            text = f"{text} [{self.path}]"
        if self.hint:
            text = f"{text}\n  -> {self.hint}"
        return text


class BadImageError(TlcvError):
    """One image could not be read; callers decide between skipping and failing (--strict)."""
