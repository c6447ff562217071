"""Parser callbacks that build `ast` nodes while Lark's LALR parser reduces each rule.

No parse tree is built: Lark calls a `Builder` method with a rule's children (tokens and the
nodes already built for its sub-rules) and keeps what it returns. Rules marked ``!`` in
``grammars/rpcnet.lark`` keep their keyword and punctuation tokens, so a node's span runs from
its first child to its last, exactly where Lark's ``propagate_positions`` would put it, without
its cost. The callbacks build nodes only and never raise for user errors (the checker reports
those).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from lark import Token, Transformer

from . import ast

__all__ = ["INT32_MAX", "MAX_FIELD_NUMBER", "Builder", "SchemaParts", "parse_duration"]

MAX_FIELD_NUMBER = (1 << 29) - 1
"""The largest field number; ``reserved N to max`` in a message reserves up to it."""
INT32_MAX = (1 << 31) - 1
"""The largest enum value; ``reserved N to max`` in an enum reserves up to it."""

_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a duration literal such as ``250ms``, ``1.5s``, ``5m`` or ``1h``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


_Child = Any
"""A callback's child: a `Token` or a node with a ``span``."""


def _tspan(token: Token) -> ast.Span:
    assert token.line is not None and token.column is not None
    end_line = token.end_line if token.end_line is not None else token.line
    end_col = token.end_column if token.end_column is not None else token.column + len(token)
    return ast.Span(token.line, token.column, end_line, end_col)


def _cspan(first: _Child, last: _Child) -> ast.Span:
    """The span from the start of `first` to the end of `last` (tokens or spanned nodes)."""
    start = _tspan(first) if isinstance(first, Token) else first.span
    end = _tspan(last) if isinstance(last, Token) else last.span
    return ast.Span(start.line, start.column, end.end_line, end.end_column)


def _unquote(token: Token) -> str:
    body = str(token)[1:-1]
    if "\\" not in body:
        return body
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), body)


_MAX = -(1 << 64)
"""Stands for ``max`` in a reserved range until the declaration's kind gives its value."""


def _reserved(body: list[Any], maximum: int) -> tuple[ast.Reserved, ...]:
    """The reserved entries among `body`, ``max`` replaced by `maximum`."""
    return tuple(
        ast.Reserved(
            tuple((low, maximum if high == _MAX else high) for low, high in c.ranges),
            c.names,
            c.span,
        )
        for c in body
        if isinstance(c, ast.Reserved)
    )


class _Dotted:
    """A dotted name and its span, before it becomes a type or a value."""

    __slots__ = ("name", "span")

    def __init__(self, name: str, span: ast.Span) -> None:
        self.name = name
        self.span = span


class _Named:
    __slots__ = ("name", "value")

    def __init__(self, name: str, value: ast.AnnotationValue) -> None:
        self.name = name
        self.value = value


class SchemaParts(NamedTuple):
    """What the ``start`` rule returns: an `ast.Schema` but for its path."""

    package: _Dotted
    doc: str | None
    imports: tuple[ast.Import, ...]
    declarations: tuple[ast.Declaration, ...]


class _Header:
    """A declaration's parts: annotations, name token and body (keyword and braces dropped).

    `children` are a ``!`` rule's: annotations, the keyword (absent for enum values), the
    name, then the rest.
    """

    __slots__ = ("annotations", "body", "name", "span")

    def __init__(self, children: list[Any], keyword: bool) -> None:
        index = 0
        while isinstance(children[index], ast.Annotation):
            index += 1
        self.annotations: tuple[ast.Annotation, ...] = tuple(children[:index])
        index += keyword
        self.name: Token = children[index]
        self.body = children[index + 1 :]
        self.span = _cspan(children[0], children[-1])


class Builder(Transformer[Token, Any]):
    """Parser callbacks (run during the LALR parse, on each rule's children): build AST nodes
    only; never raise for user errors (the checker reports those).

    Rules marked ``!`` in the grammar keep their tokens, so a node's span runs from its first
    child to its last, exactly where Lark's propagated positions would put it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.set_docs({})

    def set_docs(self, docs: Mapping[tuple[int, int], str]) -> None:
        """Doc comments by the position of the token they document, for the next parse."""
        self._docs = docs
        self._positions = sorted(docs)

    def _doc(self, span: ast.Span, name: Token | None = None) -> str | None:
        """The doc comment before the element at `span`: before its first annotation, or
        after its annotations but before its `name`."""
        if not self._positions:
            return None
        start = (span.line, span.column)
        end = (name.line, name.column) if name is not None else start
        index = bisect.bisect_left(self._positions, start)
        if index < len(self._positions) and self._positions[index] <= end:
            return self._docs[self._positions[index]]
        return None

    # -- names, types and values -----------------------------------------------------------

    def dotted_name(self, children: list[Token]) -> _Dotted:
        if len(children) == 1:
            return _Dotted(str(children[0]), _tspan(children[0]))
        return _Dotted(".".join(children), _cspan(children[0], children[-1]))

    def named_type(self, children: list[_Dotted]) -> ast.ScalarType | ast.NamedType:
        dotted = children[0]
        if dotted.name in ast.SCALAR_TYPES:
            return ast.ScalarType(dotted.name, dotted.span)
        return ast.NamedType(dotted.name, dotted.span)

    def list_type(self, children: list[Any]) -> ast.ListType:
        return ast.ListType(children[2], _cspan(children[0], children[-1]))

    def map_type(self, children: list[Any]) -> ast.MapType:
        return ast.MapType(children[2], children[4], _cspan(children[0], children[-1]))

    def duration_value(self, children: list[Token]) -> ast.DurationValue:
        text = str(children[0])
        return ast.DurationValue(parse_duration(text), text, _tspan(children[0]))

    def float_value(self, children: list[Token]) -> ast.FloatValue:
        return ast.FloatValue(float(children[0]), _tspan(children[0]))

    def int_value(self, children: list[Token]) -> ast.IntValue:
        return ast.IntValue(int(children[0]), _tspan(children[0]))

    def string_value(self, children: list[Token]) -> ast.StringValue:
        return ast.StringValue(_unquote(children[0]), _tspan(children[0]))

    def true_value(self, children: list[Token]) -> ast.BoolValue:
        return ast.BoolValue(True, _tspan(children[0]))

    def false_value(self, children: list[Token]) -> ast.BoolValue:
        return ast.BoolValue(False, _tspan(children[0]))

    def name_value(self, children: list[_Dotted]) -> ast.NameValue:
        return ast.NameValue(children[0].name, children[0].span)

    def range_value(self, children: list[ast.AnnotationValue]) -> ast.RangeValue:
        return ast.RangeValue(children[0], children[1], _cspan(children[0], children[-1]))

    def list_value(self, children: list[Any]) -> ast.ListValue:
        items = tuple(c for c in children if not isinstance(c, Token))
        return ast.ListValue(items, _cspan(children[0], children[-1]))

    def named_argument(self, children: list[Any]) -> _Named:
        return _Named(str(children[0]), children[1])

    def annotation(self, children: list[Any]) -> ast.Annotation:
        name = str(children[0])[1:]
        arguments = [c for c in children[1:] if not isinstance(c, Token)]
        positional = tuple(c for c in arguments if not isinstance(c, _Named))
        named = tuple((c.name, c.value) for c in arguments if isinstance(c, _Named))
        return ast.Annotation(name, positional, named, _cspan(children[0], children[-1]))

    # -- members ---------------------------------------------------------------------------

    def field(self, children: list[Any]) -> ast.Field:
        index = 0
        while isinstance(children[index], ast.Annotation):
            index += 1
        optional = isinstance(children[index], Token)  # only OPTIONAL is a token there
        type_ref, name, _, number = children[index + optional : index + optional + 4]
        span = _cspan(children[0], children[-1])
        return ast.Field(
            name=str(name),
            number=int(number),
            type=type_ref,
            optional=optional,
            annotations=tuple(children[:index]),
            doc=self._doc(span, name),
            span=span,
            name_span=_tspan(name),
            number_span=_tspan(number),
        )

    def enum_value(self, children: list[Any]) -> ast.EnumValue:
        header = _Header(children, keyword=False)
        number: Token = header.body[1]
        return ast.EnumValue(
            name=str(header.name),
            number=int(number),
            annotations=header.annotations,
            doc=self._doc(header.span, header.name),
            span=header.span,
            name_span=_tspan(header.name),
            number_span=_tspan(number),
        )

    def reserved_number(self, children: list[Token]) -> tuple[int, int]:
        return (int(children[0]), int(children[0]))

    def reserved_range(self, children: list[Token]) -> tuple[int, int]:
        high = children[1]
        return (int(children[0]), _MAX if high.type == "MAX" else int(high))

    def reserved_name(self, children: list[Token]) -> str:
        return _unquote(children[0])

    def reserved(self, children: list[Any]) -> ast.Reserved:
        items = [c for c in children if not isinstance(c, Token)]
        ranges = tuple(c for c in items if isinstance(c, tuple))
        names = tuple(c for c in items if isinstance(c, str))
        return ast.Reserved(ranges, names, _cspan(children[0], children[-1]))

    # -- declarations ----------------------------------------------------------------------

    def enum_decl(self, children: list[Any]) -> ast.Enum:
        h = _Header(children, keyword=True)
        return ast.Enum(
            name=str(h.name),
            values=tuple(c for c in h.body if isinstance(c, ast.EnumValue)),
            reserved=_reserved(h.body, INT32_MAX),
            annotations=h.annotations,
            doc=self._doc(h.span, h.name),
            span=h.span,
            name_span=_tspan(h.name),
        )

    def _fields(self, children: list[Any]) -> dict[str, Any]:
        h = _Header(children, keyword=True)
        return {
            "name": str(h.name),
            "reserved": _reserved(h.body, MAX_FIELD_NUMBER),
            "annotations": h.annotations,
            "doc": self._doc(h.span, h.name),
            "span": h.span,
            "name_span": _tspan(h.name),
            "fields": tuple(c for c in h.body if isinstance(c, ast.Field)),
        }

    def message_decl(self, children: list[Any]) -> ast.Message:
        return ast.Message(**self._fields(children))

    def error_decl(self, children: list[Any]) -> ast.Error:
        return ast.Error(**self._fields(children))

    def union_decl(self, children: list[Any]) -> ast.Union:
        parts = self._fields(children)
        parts["variants"] = parts.pop("fields")
        return ast.Union(**parts)

    def throws(self, children: list[Any]) -> tuple[ast.TypeRef, ...]:
        return tuple(children)

    def method(self, children: list[Any]) -> ast.Method:
        h = _Header(children, keyword=True)
        # body: "(" STREAM? type ")" "returns" "(" STREAM? type ")" throws? ";"
        body = [c for c in h.body if not isinstance(c, Token) or c.type == "STREAM"]
        throws: tuple[ast.NamedType, ...] = ()
        if isinstance(body[-1], tuple):
            # A scalar named in throws is kept as a NamedType so the checker can report it.
            throws = tuple(ast.NamedType(t.name, t.span) for t in body.pop())
        request_stream = isinstance(body[0], Token)
        if request_stream:
            body.pop(0)
        request = body.pop(0)
        response_stream = isinstance(body[0], Token)
        return ast.Method(
            name=str(h.name),
            request=request,
            request_stream=request_stream,
            response=body[-1],
            response_stream=response_stream,
            throws=throws,
            annotations=h.annotations,
            doc=self._doc(h.span, h.name),
            span=h.span,
            name_span=_tspan(h.name),
        )

    def service_decl(self, children: list[Any]) -> ast.Service:
        h = _Header(children, keyword=True)
        return ast.Service(
            name=str(h.name),
            methods=tuple(c for c in h.body if isinstance(c, ast.Method)),
            annotations=h.annotations,
            doc=self._doc(h.span, h.name),
            span=h.span,
            name_span=_tspan(h.name),
        )

    def package_decl(self, children: list[Any]) -> tuple[_Dotted, str | None]:
        return children[1], self._doc(_tspan(children[0]))

    def start(self, children: list[Any]) -> SchemaParts:
        package, doc = children[0]
        return SchemaParts(
            package=package,
            doc=doc,
            imports=tuple(c for c in children[1:] if isinstance(c, ast.Import)),
            declarations=tuple(c for c in children[1:] if not isinstance(c, ast.Import)),
        )

    def import_decl(self, children: list[Token]) -> ast.Import:
        return ast.Import(_unquote(children[1]), _cspan(children[0], children[-1]))
