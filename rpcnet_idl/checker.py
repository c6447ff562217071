"""Semantic checks over a loaded `Program`: every problem collected in one run, none raised.

Each rule has a stable ``code``. This module holds the entry point, the shared `Context` and
the structural rules (names, numbers, reserved entries, type references);
`checker_annotations` holds the annotation and policy rules. Only the schemas the user can
see are checked: every loaded file, since an imported file's errors break the generated code
as surely as a root's.

Codes here: duplicate-name, duplicate-field-number, duplicate-enum-number, field-number-range,
enum-value-range, invalid-reserved, reserved-number, reserved-name, unknown-type,
invalid-field-type, invalid-map-key, invalid-optional, invalid-rpc-type, throws-not-error,
empty-union, empty-enum.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from . import ast
from .checker_annotations import check_annotations
from .checker_types import check_field_type, check_service
from .diagnostics import Diagnostic, Severity
from .parser import INT32_MAX, MAX_FIELD_NUMBER

if TYPE_CHECKING:
    from .loader import Program, Symbol

__all__ = ["CODES", "MAX_FIELD_NUMBER", "Context", "check", "enum_value_name_span"]

CODES = frozenset(
    {
        # parser and loader
        "syntax",
        "missing-file",
        "missing-import",
        "import-cycle",
        "duplicate-import",
        # structure and types (this module)
        "duplicate-name",
        "duplicate-field-number",
        "duplicate-enum-number",
        "field-number-range",
        "enum-value-range",
        "invalid-reserved",
        "reserved-number",
        "reserved-name",
        "unknown-type",
        "invalid-field-type",
        "invalid-map-key",
        "invalid-optional",
        "invalid-rpc-type",
        "throws-not-error",
        "empty-union",
        "empty-enum",
        # annotations and policies (checker_annotations)
        "unknown-annotation",
        "annotation-misplaced",
        "duplicate-annotation",
        "bad-annotation-argument",
        "hedge-without-idempotent",
        "retry-with-hedge",
        "idempotency-key-unknown-field",
        "idempotency-key-not-scalar",
        "retry-after-dispatch",
    }
)
"""Every diagnostic code `load` can report: stable ids for tools and docs."""

INT32_MIN = -(1 << 31)


TYPE_ALIASES = {
    "int": "int32 or int64",
    "uint": "uint32 or uint64",
    "long": "int64",
    "float": "float32 or float64",
    "double": "float64",
    "str": "string",
    "boolean": "bool",
    "datetime": "timestamp",
    "timedelta": "duration",
    "repeated": "list<T>",
    "array": "list<T>",
    "dict": "map<K, V>",
}
"""Type names from other languages and what to write instead."""


class Context:
    """The program under check and the diagnostics found so far."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self.diagnostics: list[Diagnostic] = []

    def report(
        self,
        schema: ast.Schema,
        span: ast.Span,
        code: str,
        message: str,
        hint: str | None = None,
        severity: Severity = Severity.ERROR,
    ) -> None:
        self.diagnostics.append(
            Diagnostic(
                path=schema.path,
                span=span,
                code=code,
                message=message,
                severity=severity,
                hint=hint,
                source_line=self.program.source_line(schema, span.line),
            )
        )

    def duplicates(
        self, schema: ast.Schema, items: Iterable[tuple[str, ast.Span]], what: str
    ) -> None:
        """duplicate-name for each repeated name among `items` (name, span)."""
        seen: dict[str, ast.Span] = {}
        for name, span in items:
            if name in seen:
                self.report(
                    schema,
                    span,
                    "duplicate-name",
                    f"{what} {name!r} is declared twice",
                    f"first declared at line {seen[name].line}",
                )
            else:
                seen[name] = span

    def resolve(self, schema: ast.Schema, ref: ast.NamedType) -> Symbol | None:
        return self.program.resolve(schema, ref)

    def unknown_type(self, schema: ast.Schema, ref: ast.NamedType, what: str = "type") -> None:
        """Report `ref` as unknown, with the nearest visible name or where it really lives."""
        hint = None
        elsewhere = [
            symbol
            for fqn, symbol in self.program.symbols.items()
            if fqn == ref.name or fqn.endswith("." + ref.name)
        ]
        if elsewhere:
            symbol = elsewhere[0]
            hint = f"{symbol.fqn} is declared in {symbol.schema.path}"
            if symbol.schema.package != schema.package:
                hint += f"; refer to it as {symbol.fqn}"
            imported = self.program.imports_of(schema)
            if symbol.schema is not schema and all(s is not symbol.schema for s in imported):
                hint += f' and add: import "{_relative_import(schema, symbol.schema)}";'
        elif ref.name.lower() in TYPE_ALIASES:
            hint = f"write {TYPE_ALIASES[ref.name.lower()]}"
        else:
            names = [*self.program.visible_symbols(schema), *sorted(ast.SCALAR_TYPES)]
            close = difflib.get_close_matches(ref.name, names, n=1, cutoff=0.6)
            if close:
                hint = f"did you mean {close[0]}?"
        self.report(schema, ref.span, "unknown-type", f"unknown {what} {ref.name!r}", hint)


def _relative_import(schema: ast.Schema, target: ast.Schema) -> str:
    base = posixpath.dirname(schema.path) or "."
    return posixpath.relpath(target.path, base)


def check(program: Program) -> list[Diagnostic]:
    """Every problem in `program`, errors and warnings; raises nothing."""
    ctx = Context(program)
    _check_package_names(ctx)
    for schema in program.schemas.values():
        for decl in schema.declarations:
            if isinstance(decl, ast.Enum):
                _check_enum(ctx, schema, decl)
            elif isinstance(decl, ast.Service):
                check_service(ctx, schema, decl)
            else:
                _check_fields(ctx, schema, decl)
        check_annotations(ctx, schema)
    return ctx.diagnostics


def _imports_first(program: Program) -> list[ast.Schema]:
    ordered: list[str] = []
    visited: set[str] = set()

    def visit(key: str) -> None:
        if key in visited:
            return
        visited.add(key)
        for imported in program.import_keys.get(key, []):
            visit(imported)
        ordered.append(key)

    for key in program.schemas:
        visit(key)
    return [program.schemas[key] for key in ordered if key in program.schemas]


def _check_package_names(ctx: Context) -> None:
    """duplicate-name: one declaration per name in a package, across all its files.

    Files are visited imports first, so the declaration reported is the one in the importer.
    """
    seen: dict[str, tuple[ast.Schema, ast.Declaration]] = {}
    for schema in _imports_first(ctx.program):
        for decl in schema.declarations:
            fqn = f"{schema.package}.{decl.name}"
            if fqn in seen:
                first_schema, first = seen[fqn]
                where = f"{first_schema.path}:{first.name_span.line}:{first.name_span.column}"
                ctx.report(
                    schema,
                    decl.name_span,
                    "duplicate-name",
                    f"{decl.name!r} is already declared in package {schema.package}",
                    f"first declared at {where}",
                )
            else:
                seen[fqn] = (schema, decl)


def enum_value_name_span(program: Program, schema: ast.Schema, value: ast.EnumValue) -> ast.Span:
    """Where the name of `value` stands: ``value.name_span`` (kept for existing callers)."""
    return value.name_span


def _optional_span(program: Program, schema: ast.Schema, field: ast.Field) -> ast.Span:
    """Where the ``optional`` keyword of `field` stands (the last one before its type)."""
    line, column = field.type.span.line, field.type.span.column
    text = program.source_line(schema, line)[: column - 1]
    found = list(re.finditer(r"\boptional\b", text))
    if not found:
        return field.span
    return ast.Span(line, found[-1].start() + 1, line, found[-1].end() + 1)


def _check_reserved(
    ctx: Context,
    schema: ast.Schema,
    reserved: tuple[ast.Reserved, ...],
    low: int,
    high: int,
    range_code: str,
) -> None:
    for entry in reserved:
        for first, last in entry.ranges:
            if first > last:
                ctx.report(
                    schema,
                    entry.span,
                    "invalid-reserved",
                    f"reserved range {first} to {last} is empty",
                    "write the smaller number first",
                )
            elif first < low or last > high:
                ctx.report(
                    schema,
                    entry.span,
                    range_code,
                    f"reserved number out of range: {first} to {last} (allowed: {low} to {high})",
                )


def _reserved_lookup(
    reserved: tuple[ast.Reserved, ...],
) -> tuple[list[tuple[int, int]], set[str]]:
    ranges = [r for entry in reserved for r in entry.ranges]
    names = {n for entry in reserved for n in entry.names}
    return ranges, names


def _check_enum(ctx: Context, schema: ast.Schema, enum: ast.Enum) -> None:
    if not enum.values:
        ctx.report(schema, enum.name_span, "empty-enum", f"enum {enum.name!r} has no values")
    name_spans = [(v.name, v.name_span) for v in enum.values]
    ctx.duplicates(schema, name_spans, "enum value")
    _check_reserved(ctx, schema, enum.reserved, INT32_MIN, INT32_MAX, "enum-value-range")
    ranges, names = _reserved_lookup(enum.reserved)
    numbers: dict[int, str] = {}
    for value, (_, name_span) in zip(enum.values, name_spans, strict=True):
        if not INT32_MIN <= value.number <= INT32_MAX:
            ctx.report(
                schema,
                value.number_span,
                "enum-value-range",
                f"enum value {value.number} is outside the int32 range",
            )
        if value.number in numbers:
            ctx.report(
                schema,
                value.number_span,
                "duplicate-enum-number",
                f"{value.name} = {value.number} repeats the number of {numbers[value.number]}",
                "enum values need distinct numbers",
            )
        else:
            numbers[value.number] = value.name
        _check_reserved_use(
            ctx, schema, value.name, name_span, value.number, value.number_span, ranges, names
        )


def _check_reserved_use(
    ctx: Context,
    schema: ast.Schema,
    name: str,
    name_span: ast.Span,
    number: int,
    number_span: ast.Span,
    ranges: list[tuple[int, int]],
    names: set[str],
) -> None:
    for low, high in ranges:
        if low <= number <= high:
            shown = str(low) if low == high else f"{low} to {high}"
            ctx.report(
                schema,
                number_span,
                "reserved-number",
                f"number {number} of {name!r} is reserved ({shown})",
                "reserved numbers belonged to deleted entries and must not be reused",
            )
            break
    if name in names:
        ctx.report(
            schema,
            name_span,
            "reserved-name",
            f"name {name!r} is reserved",
            "reserved names belonged to deleted entries; choose another name",
        )


def _check_fields(
    ctx: Context, schema: ast.Schema, decl: ast.Message | ast.Union | ast.Error
) -> None:
    fields = decl.variants if isinstance(decl, ast.Union) else decl.fields
    what = "variant" if isinstance(decl, ast.Union) else "field"
    if isinstance(decl, ast.Union) and not fields:
        ctx.report(
            schema,
            decl.name_span,
            "empty-union",
            f"union {decl.name!r} has no variants",
            "a union needs at least one variant; exactly one is set",
        )
    ctx.duplicates(schema, ((f.name, f.name_span) for f in fields), what)
    _check_reserved(ctx, schema, decl.reserved, 1, MAX_FIELD_NUMBER, "field-number-range")
    ranges, names = _reserved_lookup(decl.reserved)
    numbers: dict[int, str] = {}
    for f in fields:
        if not 1 <= f.number <= MAX_FIELD_NUMBER:
            ctx.report(
                schema,
                f.number_span,
                "field-number-range",
                f"field number {f.number} is out of range",
                f"field numbers run from 1 to {MAX_FIELD_NUMBER} (2^29-1)",
            )
        elif f.number in numbers:
            ctx.report(
                schema,
                f.number_span,
                "duplicate-field-number",
                f"{what} number {f.number} of {f.name!r} is already used by {numbers[f.number]!r}",
                "field numbers are the wire identity of a field and must be unique",
            )
        else:
            numbers[f.number] = f.name
        _check_reserved_use(
            ctx, schema, f.name, f.name_span, f.number, f.number_span, ranges, names
        )
        if f.optional and isinstance(decl, ast.Union):
            ctx.report(
                schema,
                _optional_span(ctx.program, schema, f),
                "invalid-optional",
                f"union variant {f.name!r} cannot be optional",
                "a union's variants are all optional already: exactly one is set",
            )
        elif f.optional and isinstance(f.type, ast.ListType | ast.MapType):
            kind = "list" if isinstance(f.type, ast.ListType) else "map"
            ctx.report(
                schema,
                _optional_span(ctx.program, schema, f),
                "invalid-optional",
                f"a {kind} field cannot be optional",
                f"an absent {kind} reads as empty; drop 'optional'",
            )
        check_field_type(ctx, schema, f.type)
