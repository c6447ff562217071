"""Diagnostics: one problem in a schema, with where it is and how to render it."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .ast import Span

__all__ = ["Diagnostic", "IdlError", "Severity", "render"]


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in a schema.

    `code` is a stable id (``unknown-type``, ``duplicate-field-number`` ...); `source_line` is the
    text of the line `span` starts on, for the caret display.
    """

    path: str
    span: Span
    code: str
    message: str
    severity: Severity = Severity.ERROR
    hint: str | None = None
    source_line: str = ""

    @property
    def location(self) -> str:
        return f"{self.path}:{self.span.line}:{self.span.column}"


class IdlError(Exception):
    """A user error that the CLI reports as diagnostics and exit code 1, never a traceback."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("\n".join(render(d) for d in diagnostics))
        self.diagnostics = diagnostics


def render(diagnostic: Diagnostic) -> str:
    """``path:line:col: error[code]: message``, the source line, a caret and the hint."""
    d = diagnostic
    lines = [f"{d.location}: {d.severity.value}[{d.code}]: {d.message}"]
    if d.source_line:
        text = d.source_line.rstrip("\n")
        width = 1
        if d.span.end_line == d.span.line and d.span.end_column > d.span.column:
            width = d.span.end_column - d.span.column
        lines.append(f"    {text}")
        lines.append("    " + " " * (d.span.column - 1) + "^" + "~" * (width - 1))
    if d.hint:
        lines.append(f"    hint: {d.hint}")
    return "\n".join(lines)
