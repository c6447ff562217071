"""Diagnostics as text, JSON or GitHub workflow annotations (``--format``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .diagnostics import Diagnostic, render

__all__ = ["FORMATS", "format_diagnostics"]

FORMATS = ("text", "json", "github")


def _as_json(d: Diagnostic) -> dict[str, object]:
    return {
        "path": d.path,
        "line": d.span.line,
        "column": d.span.column,
        "end_line": d.span.end_line,
        "end_column": d.span.end_column,
        "severity": d.severity.value,
        "code": d.code,
        "message": d.message,
        "hint": d.hint,
    }


def _escape_github(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _as_github(d: Diagnostic) -> str:
    message = d.message + (f" ({d.hint})" if d.hint else "")
    return (
        f"::{d.severity.value} file={d.path},line={d.span.line},col={d.span.column},"
        f"endLine={d.span.end_line},endColumn={d.span.end_column},title={d.code}::"
        f"{_escape_github(message)}"
    )


def format_diagnostics(diagnostics: Sequence[Diagnostic], fmt: str = "text") -> str:
    """All of `diagnostics` in one of `FORMATS`; JSON is ``{"diagnostics": [...]}``."""
    if fmt == "json":
        return json.dumps({"diagnostics": [_as_json(d) for d in diagnostics]}, indent=2)
    if fmt == "github":
        return "\n".join(_as_github(d) for d in diagnostics)
    if fmt == "text":
        return "\n".join(render(d) for d in diagnostics)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
