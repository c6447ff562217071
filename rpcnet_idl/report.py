"""Diagnostics as text, JSON or GitHub workflow annotations (``--format``).

Lint and breaking-change findings are `Finding`s: diagnostics that also carry a rule category
and, for breaking changes, the place in the old version. Every format shows both. The JSON
shape is documented in ``docs/schema-checks.md`` ("JSON output") and is the same for every
command: each item has every key, with ``null`` where a value does not apply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from .ast import Span
from .diagnostics import Diagnostic, render

__all__ = ["FORMATS", "JSON_VERSION", "Finding", "format_diagnostics"]

FORMATS = ("text", "json", "github")
JSON_VERSION = 1
"""Bumped on any incompatible change of the JSON shape."""


@dataclass(frozen=True, slots=True)
class Finding(Diagnostic):
    """A lint or breaking-change finding: `code` is the rule id.

    `path`/`span` point into the new (or only) version; `old_path`/`old_span` into the old
    version, where the element existed there.
    """

    category: str = ""
    """The rule's category: ``wire``, ``source`` or ``policy`` for breaking changes; ``naming``,
    ``style``, ``comments``, ``deprecation`` or ``policy`` for lint rules."""
    old_path: str | None = None
    old_span: Span | None = None
    old_source_line: str = ""

    @property
    def old_location(self) -> str | None:
        if self.old_path is None or self.old_span is None:
            return None
        return f"{self.old_path}:{self.old_span.line}:{self.old_span.column}"


def _span_json(path: str, span: Span) -> dict[str, object]:
    return {
        "path": path,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
    }


def _as_json(d: Diagnostic) -> dict[str, object]:
    item = _span_json(d.path, d.span)
    item.update(severity=d.severity.value, code=d.code, message=d.message, hint=d.hint)
    category: str | None = None
    old: dict[str, object] | None = None
    if isinstance(d, Finding):
        category = d.category or None
        if d.old_path is not None and d.old_span is not None:
            old = _span_json(d.old_path, d.old_span)
    item.update(category=category, old=old)
    return item


def _render_text(d: Diagnostic) -> str:
    text = render(d)
    if isinstance(d, Finding):
        extra = []
        if d.category:
            extra.append(f"category: {d.category}")
        if d.old_location is not None and d.old_location != d.location:
            extra.append(f"was: {d.old_location}")
        if extra:
            text += "\n    " + "; ".join(extra)
    return text


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _as_github(d: Diagnostic) -> str:
    message = d.message + (f" ({d.hint})" if d.hint else "")
    title = d.code
    if isinstance(d, Finding):
        if d.category:
            title += f" ({d.category})"
        old = d.old_location
        if old is not None and old != d.location:
            message += f" [was: {old}]"
    return (
        f"::{d.severity.value} file={_escape_property(d.path)},line={d.span.line},"
        f"col={d.span.column},endLine={d.span.end_line},endColumn={d.span.end_column},"
        f"title={_escape_property(title)}::{_escape_data(message)}"
    )


def format_diagnostics(diagnostics: Sequence[Diagnostic], fmt: str = "text") -> str:
    """All of `diagnostics` in one of `FORMATS`.

    JSON is ``{"version": 1, "diagnostics": [...]}``; see docs/schema-checks.md.
    """
    if fmt == "json":
        items = [_as_json(d) for d in diagnostics]
        return json.dumps({"version": JSON_VERSION, "diagnostics": items}, indent=2)
    if fmt == "github":
        return "\n".join(_as_github(d) for d in diagnostics)
    if fmt == "text":
        return "\n".join(_render_text(d) for d in diagnostics)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
