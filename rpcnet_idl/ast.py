"""The syntax tree of a `.rpc` file: frozen dataclasses carrying their source span, no logic.

The parser builds these; the checker, the linter, the breaking-change detector and the code
generator read them. Names are kept exactly as written in the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "SCALAR_TYPES",
    "Annotation",
    "AnnotationValue",
    "BoolValue",
    "Declaration",
    "DurationValue",
    "Enum",
    "EnumValue",
    "Error",
    "Field",
    "FloatValue",
    "Import",
    "IntValue",
    "ListType",
    "ListValue",
    "MapType",
    "Message",
    "Method",
    "NameValue",
    "NamedType",
    "RangeValue",
    "Reserved",
    "ScalarType",
    "Schema",
    "Service",
    "Span",
    "StringValue",
    "TypeRef",
    "Union",
]

SCALAR_TYPES = frozenset(
    {
        "bool",
        "int32",
        "int64",
        "uint32",
        "uint64",
        "float32",
        "float64",
        "string",
        "bytes",
        "timestamp",
        "duration",
    }
)


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node stands in its file: 1-based lines and columns, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int


# --- annotation values --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntValue:
    value: int
    span: Span


@dataclass(frozen=True, slots=True)
class FloatValue:
    value: float
    span: Span


@dataclass(frozen=True, slots=True)
class StringValue:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class BoolValue:
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class DurationValue:
    """A duration literal such as ``250ms``, ``1.5s`` or ``5m``."""

    seconds: float
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class NameValue:
    """A bare or dotted identifier: a status code, an error type or a field name."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class RangeValue:
    """``LOW..HIGH``, such as a backoff range ``50ms..1s``."""

    low: AnnotationValue
    high: AnnotationValue
    span: Span


@dataclass(frozen=True, slots=True)
class ListValue:
    """``[a, b, c]``."""

    items: tuple[AnnotationValue, ...]
    span: Span


AnnotationValue: TypeAlias = (
    IntValue
    | FloatValue
    | StringValue
    | BoolValue
    | DurationValue
    | NameValue
    | RangeValue
    | ListValue
)


@dataclass(frozen=True, slots=True)
class Annotation:
    """``@name``, ``@name(value)`` or ``@name(key = value, ...)``."""

    name: str
    positional: tuple[AnnotationValue, ...]
    named: tuple[tuple[str, AnnotationValue], ...]
    span: Span

    def argument(self, key: str) -> AnnotationValue | None:
        """The named argument `key`, or None."""
        for name, value in self.named:
            if name == key:
                return value
        return None


# --- types --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalarType:
    name: str
    """One of `SCALAR_TYPES`."""
    span: Span


@dataclass(frozen=True, slots=True)
class NamedType:
    """A reference to a message, enum, union or error, qualified (``a.b.v1.T``) or not."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class ListType:
    element: TypeRef
    span: Span


@dataclass(frozen=True, slots=True)
class MapType:
    key: TypeRef
    value: TypeRef
    span: Span


TypeRef: TypeAlias = ScalarType | NamedType | ListType | MapType


# --- declarations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reserved:
    """``reserved 3, 5 to 7;`` or ``reserved "old";`` (ranges inclusive)."""

    ranges: tuple[tuple[int, int], ...]
    names: tuple[str, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Field:
    """A field of a message or error, or a variant of a union."""

    name: str
    number: int
    type: TypeRef
    optional: bool
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span
    number_span: Span


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    number: int
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span
    number_span: Span


@dataclass(frozen=True, slots=True)
class Enum:
    name: str
    values: tuple[EnumValue, ...]
    reserved: tuple[Reserved, ...]
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    fields: tuple[Field, ...]
    reserved: tuple[Reserved, ...]
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Union:
    """A tagged union: exactly one variant is set."""

    name: str
    variants: tuple[Field, ...]
    reserved: tuple[Reserved, ...]
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Error:
    """An application error: raised by a handler, raised again in the caller."""

    name: str
    fields: tuple[Field, ...]
    reserved: tuple[Reserved, ...]
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    request: TypeRef
    request_stream: bool
    response: TypeRef
    response_stream: bool
    throws: tuple[NamedType, ...]
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    methods: tuple[Method, ...]
    annotations: tuple[Annotation, ...]
    doc: str | None
    span: Span
    name_span: Span


Declaration: TypeAlias = Enum | Message | Union | Error | Service


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    """As written: relative to the importing file, or to an include directory."""
    span: Span


@dataclass(frozen=True, slots=True)
class Schema:
    """One `.rpc` file."""

    path: str
    """The file as given to the tool (used in diagnostics and generated headers)."""
    package: str
    package_span: Span
    imports: tuple[Import, ...]
    declarations: tuple[Declaration, ...]
    """In source order."""
    doc: str | None = None
