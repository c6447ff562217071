"""Parse one `.rpc` file into an `ast.Schema`.

Lark's LALR parser (``grammars/rpcnet.lark``, positions propagated) builds a parse tree; a
Transformer that only constructs frozen AST nodes turns it into `ast.Schema`; doc comments are
attached afterwards by position (see `_doc_comments`). A syntax error becomes one ``syntax``
diagnostic, labelled through the catalogue in `syntax_examples`; semantic problems are the
checker's business and never raised here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast, resources
from .diagnostics import Diagnostic, IdlError
from .syntax_examples import describe_syntax_error

__all__ = ["parse", "parse_duration"]

_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(-?[0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a duration literal such as ``250ms``, ``1.5s``, ``5m`` or ``1h``."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


@functools.cache
def _lark() -> Lark:
    return Lark(
        resources.read_text("grammars", "rpcnet.lark"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def _span(meta: Any) -> ast.Span:
    return ast.Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _tspan(token: Token) -> ast.Span:
    assert token.line is not None and token.column is not None
    end_line = token.end_line if token.end_line is not None else token.line
    end_col = token.end_column if token.end_column is not None else token.column + len(token)
    return ast.Span(token.line, token.column, end_line, end_col)


def _unquote(token: Token) -> str:
    body = str(token)[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "0": "\0"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), body)


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


class _Header:
    """The shared parts of a declaration: annotations, name token and the rest."""

    def __init__(self, children: list[Any]) -> None:
        self.annotations = tuple(c for c in children if isinstance(c, ast.Annotation))
        rest = [c for c in children if not isinstance(c, ast.Annotation)]
        self.name: Token = rest[0]
        self.body = rest[1:]


@v_args(meta=True)
class _ToAst(Transformer[Token, Any]):
    """Builds AST nodes only; never raises for user errors (the checker reports those)."""

    def __init__(self, docs: dict[tuple[int, int], str]) -> None:
        super().__init__()
        self._docs = docs

    def _doc(self, meta: Any) -> str | None:
        return self._docs.get((meta.line, meta.column))

    # -- names, types and values -----------------------------------------------------------

    def dotted_name(self, meta: Any, children: list[Token]) -> _Dotted:
        return _Dotted(".".join(str(t) for t in children), _span(meta))

    def named_type(self, meta: Any, children: list[_Dotted]) -> ast.ScalarType | ast.NamedType:
        dotted = children[0]
        if dotted.name in ast.SCALAR_TYPES:
            return ast.ScalarType(dotted.name, dotted.span)
        return ast.NamedType(dotted.name, dotted.span)

    def list_type(self, meta: Any, children: list[ast.TypeRef]) -> ast.ListType:
        return ast.ListType(children[0], _span(meta))

    def map_type(self, meta: Any, children: list[ast.TypeRef]) -> ast.MapType:
        return ast.MapType(children[0], children[1], _span(meta))

    def duration_value(self, meta: Any, children: list[Token]) -> ast.DurationValue:
        text = str(children[0])
        return ast.DurationValue(parse_duration(text), text, _tspan(children[0]))

    def float_value(self, meta: Any, children: list[Token]) -> ast.FloatValue:
        return ast.FloatValue(float(children[0]), _tspan(children[0]))

    def int_value(self, meta: Any, children: list[Token]) -> ast.IntValue:
        return ast.IntValue(int(children[0]), _tspan(children[0]))

    def string_value(self, meta: Any, children: list[Token]) -> ast.StringValue:
        return ast.StringValue(_unquote(children[0]), _tspan(children[0]))

    def true_value(self, meta: Any, children: list[Token]) -> ast.BoolValue:
        return ast.BoolValue(True, _tspan(children[0]))

    def false_value(self, meta: Any, children: list[Token]) -> ast.BoolValue:
        return ast.BoolValue(False, _tspan(children[0]))

    def name_value(self, meta: Any, children: list[_Dotted]) -> ast.NameValue:
        return ast.NameValue(children[0].name, children[0].span)

    def range_value(self, meta: Any, children: list[ast.AnnotationValue]) -> ast.RangeValue:
        return ast.RangeValue(children[0], children[1], _span(meta))

    def list_value(self, meta: Any, children: list[ast.AnnotationValue]) -> ast.ListValue:
        return ast.ListValue(tuple(c for c in children if c is not None), _span(meta))

    def named_argument(self, meta: Any, children: list[Any]) -> _Named:
        return _Named(str(children[0]), children[1])

    def annotation(self, meta: Any, children: list[Any]) -> ast.Annotation:
        name = str(children[0])[1:]
        positional = tuple(c for c in children[1:] if c is not None and not isinstance(c, _Named))
        named = tuple((c.name, c.value) for c in children[1:] if isinstance(c, _Named))
        return ast.Annotation(name, positional, named, _span(meta))

    # -- members ---------------------------------------------------------------------------

    def field(self, meta: Any, children: list[Any]) -> ast.Field:
        annotations = tuple(c for c in children if isinstance(c, ast.Annotation))
        rest = [c for c in children if not isinstance(c, ast.Annotation)]
        optional = isinstance(rest[0], Token) and rest[0].type == "OPTIONAL"
        if optional:
            rest = rest[1:]
        type_ref, name, number = rest
        return ast.Field(
            name=str(name),
            number=int(number),
            type=type_ref,
            optional=optional,
            annotations=annotations,
            doc=self._doc(meta),
            span=_span(meta),
            name_span=_tspan(name),
            number_span=_tspan(number),
        )

    def enum_value(self, meta: Any, children: list[Any]) -> ast.EnumValue:
        header = _Header(children)
        number: Token = header.body[0]
        return ast.EnumValue(
            name=str(header.name),
            number=int(number),
            annotations=header.annotations,
            doc=self._doc(meta),
            span=_span(meta),
            number_span=_tspan(number),
        )

    def reserved_number(self, meta: Any, children: list[Token]) -> tuple[int, int]:
        return (int(children[0]), int(children[0]))

    def reserved_range(self, meta: Any, children: list[Token]) -> tuple[int, int]:
        high = children[1]
        return (int(children[0]), ast_max_field_number() if high.type == "MAX" else int(high))

    def reserved_name(self, meta: Any, children: list[Token]) -> str:
        return _unquote(children[0])

    def reserved(self, meta: Any, children: list[Any]) -> ast.Reserved:
        ranges = tuple(c for c in children if isinstance(c, tuple))
        names = tuple(c for c in children if isinstance(c, str))
        return ast.Reserved(ranges, names, _span(meta))

    # -- declarations ----------------------------------------------------------------------

    def enum_decl(self, meta: Any, children: list[Any]) -> ast.Enum:
        h = _Header(children)
        return ast.Enum(
            name=str(h.name),
            values=tuple(c for c in h.body if isinstance(c, ast.EnumValue)),
            reserved=tuple(c for c in h.body if isinstance(c, ast.Reserved)),
            annotations=h.annotations,
            doc=self._doc(meta),
            span=_span(meta),
            name_span=_tspan(h.name),
        )

    def _fields(self, meta: Any, children: list[Any]) -> dict[str, Any]:
        h = _Header(children)
        return {
            "name": str(h.name),
            "reserved": tuple(c for c in h.body if isinstance(c, ast.Reserved)),
            "annotations": h.annotations,
            "doc": self._doc(meta),
            "span": _span(meta),
            "name_span": _tspan(h.name),
            "fields": tuple(c for c in h.body if isinstance(c, ast.Field)),
        }

    def message_decl(self, meta: Any, children: list[Any]) -> ast.Message:
        return ast.Message(**self._fields(meta, children))

    def error_decl(self, meta: Any, children: list[Any]) -> ast.Error:
        return ast.Error(**self._fields(meta, children))

    def union_decl(self, meta: Any, children: list[Any]) -> ast.Union:
        parts = self._fields(meta, children)
        parts["variants"] = parts.pop("fields")
        return ast.Union(**parts)

    def throws(self, meta: Any, children: list[Any]) -> tuple[ast.TypeRef, ...]:
        return tuple(children)

    def method(self, meta: Any, children: list[Any]) -> ast.Method:
        h = _Header(children)
        body = list(h.body)
        throws: tuple[ast.NamedType, ...] = ()
        if body and isinstance(body[-1], tuple):
            # A scalar named in throws is kept as a NamedType so the checker can report it.
            throws = tuple(ast.NamedType(t.name, t.span) for t in body.pop())
        request_stream = isinstance(body[0], Token)
        if request_stream:
            body.pop(0)
        request = body.pop(0)
        response_stream = isinstance(body[0], Token)
        if response_stream:
            body.pop(0)
        return ast.Method(
            name=str(h.name),
            request=request,
            request_stream=request_stream,
            response=body[0],
            response_stream=response_stream,
            throws=throws,
            annotations=h.annotations,
            doc=self._doc(meta),
            span=_span(meta),
            name_span=_tspan(h.name),
        )

    def service_decl(self, meta: Any, children: list[Any]) -> ast.Service:
        h = _Header(children)
        return ast.Service(
            name=str(h.name),
            methods=tuple(c for c in h.body if isinstance(c, ast.Method)),
            annotations=h.annotations,
            doc=self._doc(meta),
            span=_span(meta),
            name_span=_tspan(h.name),
        )

    def package_decl(self, meta: Any, children: list[_Dotted]) -> _Dotted:
        return children[0]

    def import_decl(self, meta: Any, children: list[Token]) -> ast.Import:
        return ast.Import(_unquote(children[0]), _span(meta))


def ast_max_field_number() -> int:
    """The largest field number (2^29 - 1); ``reserved N to max`` reserves up to it."""
    return (1 << 29) - 1


def _doc_comments(text: str) -> dict[tuple[int, int], str]:
    """Map the (line, column) of the first token after each `///` block to the block's text.

    A block is a run of `///` comments on consecutive lines; ordinary comments between it and
    the token are skipped, anything else (a blank line ends nothing, a token does) consumes it.
    Strings and block comments are skipped so that `///` inside them is not taken for a doc.
    """
    docs: dict[tuple[int, int], str] = {}
    pending: list[str] = []
    last_doc_line = -1
    i, line, col, n = 0, 1, 1, len(text)

    def advance(to: int) -> None:
        nonlocal i, line, col
        chunk = text[i:to]
        newlines = chunk.count("\n")
        if newlines:
            line += newlines
            col = len(chunk) - chunk.rfind("\n")
        else:
            col += len(chunk)
        i = to

    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            advance(i + 1)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            comment = text[i:end]
            if comment.startswith("///") and not comment.startswith("////"):
                if pending and line != last_doc_line + 1:
                    pending = []
                body = comment[3:]
                pending.append(body[1:] if body.startswith(" ") else body)
                last_doc_line = line
            advance(end)
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            advance(n if end < 0 else end + 2)
        else:
            if pending:
                docs[(line, col)] = "\n".join(pending).rstrip()
                pending = []
            if ch == '"':
                match = re.compile(r'"([^"\\\n]|\\.)*"?').match(text, i)
                advance(match.end() if match else i + 1)
            else:
                match = re.compile(r"[A-Za-z0-9_.@-]+").match(text, i)
                advance(match.end() if match else i + 1)
    return docs


def _source_line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _parse_tree(text: str) -> Tree[Token]:
    """The parse tree, or UnexpectedInput with ``previous`` set to the token before it."""
    interactive = _lark().parse_interactive(text)
    recent: list[Token | None] = [None, None, None]
    try:
        for token in interactive.iter_parse():
            recent = [recent[1], recent[2], token]
        tree: Tree[Token] = interactive.feed_eof(recent[2])  # type: ignore[no-untyped-call]
        return tree
    except UnexpectedInput as error:
        offending = getattr(error, "token", None)
        if offending is not None and offending is recent[2]:
            recent = [None, recent[0], recent[1]]
        error.previous = recent[2]  # type: ignore[attr-defined]
        error.two_before = recent[1]  # type: ignore[attr-defined]
        raise


def _parse_only(text: str) -> object:
    return _lark().parse(text)


def parse(text: str, path: str) -> ast.Schema:
    """The syntax tree of `text` (read from `path`, used in diagnostics).

    Raises `IdlError` with a single ``syntax`` diagnostic on malformed input.
    """
    try:
        tree = _parse_tree(text)
    except (UnexpectedToken, UnexpectedCharacters, UnexpectedEOF) as error:
        diagnostic = _syntax_diagnostic(error, text, path, _parse_only)
        raise IdlError([diagnostic]) from None
    docs = _doc_comments(text)
    parts = _ToAst(docs).transform(tree).children
    package: _Dotted = parts[0]
    imports = tuple(p for p in parts[1:] if isinstance(p, ast.Import))
    declarations = tuple(p for p in parts[1:] if not isinstance(p, ast.Import))
    return ast.Schema(
        path=path,
        package=package.name,
        package_span=package.span,
        imports=imports,
        declarations=declarations,
        doc=docs.get(_first_token_position(tree)),
    )


def _first_token_position(tree: Tree[Token]) -> tuple[int, int]:
    meta = tree.children[0].meta if isinstance(tree.children[0], Tree) else tree.meta
    return (meta.line, meta.column)


def _syntax_diagnostic(
    error: UnexpectedInput, text: str, path: str, parse_fn: Callable[[str], object]
) -> Diagnostic:
    found = describe_syntax_error(error, text, parse_fn, _lark())
    return Diagnostic(
        path=path,
        span=found.span,
        code="syntax",
        message=found.message,
        hint=found.hint,
        source_line=_source_line(text, found.span.line),
    )
