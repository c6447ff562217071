"""What every breaking-change comparison shares: both programs, name translation, findings.

`Diff` pairs the old program with the new one: `translate` maps an old fully qualified name to
the name it has in the new program (only packages renamed by a root file change it), and
`report` records a finding with the place in both versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import ast
from .breaking_rules import BREAKING_RULES
from .diagnostics import Severity
from .loader import Program
from .report import Finding

__all__ = ["Diff", "Place", "Shape", "type_text"]

Shape = tuple[object, ...]
"""A type with named types resolved to fully qualified (new-program) names."""


@dataclass(frozen=True, slots=True)
class Place:
    schema: ast.Schema
    span: ast.Span


@dataclass
class Diff:
    old: Program
    new: Program
    old_display: Callable[[str], str] = str
    """Old schema path -> how findings show it (``origin/main:schemas/a.rpc``)."""
    key_map: Callable[[str], str] = str
    """Old schema key -> the key of the same file in the new program."""
    packages: dict[str, str] = field(default_factory=dict)
    """Old package -> new package, for root files whose package changed."""
    findings: list[Finding] = field(default_factory=list)

    def translate(self, fqn: str) -> str:
        package, _, name = fqn.rpartition(".")
        return f"{self.packages[package]}.{name}" if package in self.packages else fqn

    def report(
        self,
        rule_id: str,
        message: str,
        new: Place | None,
        old: Place | None,
        hint: str | None = None,
    ) -> None:
        rule = BREAKING_RULES[rule_id]
        old_path = self.old_display(old.schema.path) if old is not None else None
        old_line = self.old.source_line(old.schema, old.span.line) if old is not None else ""
        if new is not None:
            path, span = new.schema.path, new.span
            line = self.new.source_line(new.schema, new.span.line)
        elif old is not None and old_path is not None:
            path, span, line = old_path, old.span, old_line
        else:  # pragma: no cover - every caller passes a place
            raise ValueError("a finding needs a place")
        self.findings.append(
            Finding(
                path=path,
                span=span,
                code=rule_id,
                message=message,
                severity=Severity.ERROR,
                hint=hint,
                source_line=line,
                category=rule.category,
                old_path=old_path,
                old_span=old.span if old is not None else None,
                old_source_line=old_line,
            )
        )

    # -- types -------------------------------------------------------------------------------

    def old_shape(self, schema: ast.Schema, ref: ast.TypeRef) -> Shape:
        return _shape(self.old, schema, ref, self.translate)

    def new_shape(self, schema: ast.Schema, ref: ast.TypeRef) -> Shape:
        return _shape(self.new, schema, ref, str)

    def new_kind(self, shape: Shape) -> type | None:
        """The declaration class a ``named`` shape stands for in the new program."""
        if shape[0] != "named":
            return None
        symbol = self.new.symbols.get(str(shape[1]))
        return type(symbol.decl) if symbol is not None else None


def _shape(
    program: Program, schema: ast.Schema, ref: ast.TypeRef, translate: Callable[[str], str]
) -> Shape:
    if isinstance(ref, ast.ScalarType):
        return ("scalar", ref.name)
    if isinstance(ref, ast.NamedType):
        symbol = program.resolve(schema, ref)
        return ("named", translate(symbol.fqn) if symbol is not None else ref.name)
    if isinstance(ref, ast.ListType):
        return ("list", _shape(program, schema, ref.element, translate))
    return (
        "map",
        _shape(program, schema, ref.key, translate),
        _shape(program, schema, ref.value, translate),
    )


def type_text(ref: ast.TypeRef) -> str:
    """A type as written in the schema."""
    if isinstance(ref, ast.ScalarType | ast.NamedType):
        return ref.name
    if isinstance(ref, ast.ListType):
        return f"list<{type_text(ref.element)}>"
    return f"map<{type_text(ref.key)}, {type_text(ref.value)}>"
