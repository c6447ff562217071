"""Friendly syntax errors: common mistakes recognised and named, at the right place.

Three layers, tried in order: mistakes told apart by their tokens (protobuf habits such as
``repeated`` or ``};``, an annotation after its element, a misplaced import); the `CATALOGUE`
of malformed snippets, matched by parser state and expected terminals the way Lark's
``match_examples`` does (re-implemented here: lark 1.3.1's version fails formatting a debug
message when two states match with different terminals); a missing ';' or '}' inferred from
what the parser expected. Anything else gets "unexpected X; expected Y".
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast

__all__ = ["CATALOGUE", "SyntaxExample", "SyntaxProblem", "describe_syntax_error"]

Anchor = Literal["token", "after_previous", "two_before"]
"""Where the diagnostic points: the offending token, just after the token before it, or at the
token two before it (the keyword of a declaration that should not have been nested)."""

DECLARATION_KEYWORDS = ("enum", "message", "union", "error", "service")


@dataclass(frozen=True)
class SyntaxExample:
    label: str
    message: str
    """May use ``{token}``, the offending token as the user wrote it."""
    hint: str | None
    anchor: Anchor
    examples: tuple[str, ...]


@dataclass(frozen=True)
class SyntaxProblem:
    message: str
    hint: str | None
    span: ast.Span


_P = "package a.b.v1;\n"

CATALOGUE: tuple[SyntaxExample, ...] = (
    SyntaxExample(
        "missing-package",
        "a schema must start with 'package NAME;'",
        "add a package statement such as 'package acme.orders.v1;' as the first line",
        "token",
        ("message M {}", 'import "x.rpc";', "packag a;", "enum E {}", "@deprecated message M {}"),
    ),
    SyntaxExample(
        "missing-semicolon",
        "missing ';'",
        None,
        "after_previous",
        (
            "package a.b\nmessage M {}",
            "package a.b\n",
            _P + 'import "x.rpc"\nmessage M {}',
            _P + "message M {\n  string a = 1\n  string b = 2;\n}",
            _P + "message M {\n  string a = 1\n}",
            _P + "enum E {\n  A = 0\n  B = 1;\n}",
            _P + "enum E {\n  A = 0\n}",
            _P + "service S {\n  rpc A(B) returns (C)\n  rpc D(E) returns (F);\n}",
            _P + "service S {\n  rpc A(B) returns (C)\n}",
            _P + "service S {\n  rpc A(B) returns (C) throws (E)\n}",
            _P + "message M {\n  reserved 1\n}",
            _P + "message M {\n  reserved 1 to 3\n}",
            _P + 'message M {\n  reserved "x"\n}',
        ),
    ),
    SyntaxExample(
        "method-body",
        "a method has no body",
        "end the method with ';' (rpc Name(Request) returns (Response);)",
        "token",
        (
            _P + "service S {\n  rpc A(B) returns (C) {}\n}",
            _P + "service S {\n  rpc A(B) returns (C) throws (E) {}\n}",
        ),
    ),
    SyntaxExample(
        "nested-declaration",
        "missing '}' before this declaration",
        "declarations do not nest: close the previous one with '}' first",
        "two_before",
        (_P + "message M {\n  string a = 1;\nmessage N {\n}",),
    ),
    SyntaxExample(
        "missing-close-brace",
        "missing '}' at the end of the file",
        "every '{' needs a matching '}'",
        "after_previous",
        (
            _P + "message M {\n  string a = 1;\n",
            _P + "message M {\n",
            _P + "enum E {\n  A = 0;\n",
            _P + "service S {\n  rpc A(B) returns (C);\n",
        ),
    ),
    SyntaxExample(
        "unknown-keyword",
        "unknown keyword '{token}'",
        "a declaration starts with enum, message, union, error or service",
        "token",
        (
            _P + "struct M {}",
            _P + 'import "x.rpc";\nstruct M {}',
            _P + "message M {}\nstruct N {}",
        ),
    ),
    SyntaxExample(
        "unknown-service-member",
        "unexpected '{token}' in a service",
        "a service holds only 'rpc Name(Request) returns (Response);' methods",
        "token",
        (_P + "service S {\n  method A(B) returns (C);\n}",),
    ),
    SyntaxExample(
        "missing-equals",
        "missing '=' before the number",
        "a field is written 'TYPE name = NUMBER;'",
        "token",
        (_P + "message M {\n  string a 1;\n}", _P + "enum E {\n  A 0;\n}"),
    ),
    SyntaxExample(
        "missing-number",
        "missing the number after '='",
        "a field is written 'TYPE name = NUMBER;' with NUMBER from 1 to 536870911",
        "token",
        (
            _P + "message M {\n  string a = ;\n}",
            _P + "message M {\n  string a = b;\n}",
            _P + "enum E {\n  A = ;\n}",
        ),
    ),
    SyntaxExample(
        "missing-field-number",
        "missing '= NUMBER' after the field name",
        "every field has a number, its wire identity: 'TYPE name = NUMBER;'",
        "after_previous",
        (_P + "message M {\n  string a;\n}",),
    ),
    SyntaxExample(
        "missing-field-name",
        "missing the field name",
        "a field is written 'TYPE name = NUMBER;'",
        "token",
        (_P + "message M {\n  string = 1;\n}", _P + "message M {\n  optional = 1;\n}"),
    ),
    SyntaxExample(
        "missing-returns",
        "expected 'returns' after the request type",
        "a method is written 'rpc Name(Request) returns (Response);'",
        "token",
        (
            _P + "service S {\n  rpc A(B) (C);\n}",
            _P + "service S {\n  rpc A(B) return (C);\n}",
            _P + "service S {\n  rpc A(B);\n}",
        ),
    ),
    SyntaxExample(
        "missing-parenthesis",
        "expected '(' around the method's type",
        "a method is written 'rpc Name(Request) returns (Response);'",
        "token",
        (
            _P + "service S {\n  rpc A B returns (C);\n}",
            _P + "service S {\n  rpc A(B) returns C;\n}",
        ),
    ),
)


_FRIENDLY_TERMINALS = {
    "NAME": "a name",
    "SIGNED_INT": "a number",
    "FLOAT": "a number",
    "DURATION": "a duration",
    "STRING": "a string",
    "ANNOTATION_NAME": "an annotation",
    "$END": "the end of the file",
}


def _describe_terminal(name: str, lark: Lark) -> str:
    if name in _FRIENDLY_TERMINALS:
        return _FRIENDLY_TERMINALS[name]
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return name
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return name.lower()


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    return f"'{token}'"


def _token_span(token: Token) -> ast.Span:
    line = token.line or 1
    column = token.column or 1
    end_line = token.end_line or line
    end_column = token.end_column or column + max(len(token), 1)
    return ast.Span(line, column, end_line, end_column)


def _after(token: Token) -> ast.Span:
    span = _token_span(token)
    return ast.Span(span.end_line, span.end_column, span.end_line, span.end_column + 1)


def _eof_span(text: str) -> ast.Span:
    lines = text.split("\n")
    return ast.Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)


def _signature(error: UnexpectedInput) -> tuple[Any, frozenset[str] | None, str | None]:
    accepts = getattr(error, "expected", None)
    token = getattr(error, "token", None)
    return (
        error.state,
        frozenset(accepts) if accepts is not None else None,
        None if token is None else "$END" if token.type == "$END" else str(token),
    )


@functools.cache
def _catalogue_signatures(
    parse_fn: Callable[[str], object],
) -> tuple[tuple[SyntaxExample, Any, frozenset[str] | None, str | None], ...]:
    found = []
    for entry in CATALOGUE:
        for snippet in entry.examples:
            try:
                parse_fn(snippet)
            except UnexpectedInput as error:
                found.append((entry, *_signature(error)))
    return tuple(found)


def _match(error: UnexpectedInput, parse_fn: Callable[[str], object]) -> SyntaxExample | None:
    """The catalogue entry failing in the same parser state; an exact token match wins."""
    if isinstance(error, UnexpectedCharacters) or error.state is None:
        return None
    state, accepts, token = _signature(error)
    at_end = token == "$END"
    candidate: SyntaxExample | None = None
    for entry, ex_state, ex_accepts, ex_token in _catalogue_signatures(parse_fn):
        if ex_state != state or ex_accepts != accepts or (ex_token == "$END") != at_end:
            continue
        if ex_token == token:
            return entry
        if candidate is None:
            candidate = entry
    return candidate


def _character_problem(error: UnexpectedCharacters, text: str) -> SyntaxProblem:
    span = ast.Span(error.line, error.column, error.line, error.column + 1)
    position = error.pos_in_stream or 0
    char = text[position] if position < len(text) else ""
    if char == '"':
        return SyntaxProblem("unterminated string", "close the string with '\"'", span)
    hint = "strings are written in double quotes" if char == "'" else None
    return SyntaxProblem(f"unexpected character {char!r}", hint, span)


def _habit_problem(
    token: Token,
    expected: frozenset[str],
    previous: Token | None,
    before: Token | None,
    span: ast.Span,
) -> SyntaxProblem | None:
    """Mistakes that the parser state alone cannot tell apart, recognised by their tokens."""
    if before is not None and before == "repeated" and "EQUAL" in expected:
        return SyntaxProblem(
            "'repeated' is not part of the language",
            "a list field is written 'list<T> name = N;'",
            _token_span(before),
        )
    if token.type == "IMPORT" and "PACKAGE" not in expected:
        return SyntaxProblem(
            "imports come before every declaration", "move it up, after 'package'", span
        )
    if token.type == "PACKAGE":
        return SyntaxProblem("a schema has one package statement, its first", None, span)
    if token == ";" and previous is not None and previous == "}":
        return SyntaxProblem("no ';' after a declaration's '}'", None, span)
    if token == "," and "SEMICOLON" in expected:
        return SyntaxProblem("entries end with ';', not ','", None, span)
    if token.type == "ANNOTATION_NAME" and "SEMICOLON" in expected:
        return SyntaxProblem(
            f"annotation '{token}' after the element it annotates",
            "annotations go on their own, before the field, value, method or declaration",
            span,
        )
    return None


def _from_catalogue(
    entry: SyntaxExample, error: UnexpectedInput, shown: str, span: ast.Span
) -> SyntaxProblem:
    previous: Token | None = getattr(error, "previous", None)
    before: Token | None = getattr(error, "two_before", None)
    if entry.anchor == "after_previous" and previous is not None:
        span = _after(previous)
    elif entry.anchor == "two_before" and before is not None:
        span = _token_span(before)
    hint = entry.hint
    if entry.label == "unknown-keyword":
        close = difflib.get_close_matches(shown, DECLARATION_KEYWORDS, n=1)
        if close:
            hint = f"did you mean '{close[0]}'?"
    return SyntaxProblem(entry.message.replace("{token}", shown), hint, span)


def describe_syntax_error(
    error: UnexpectedInput, text: str, parse_fn: Callable[[str], object], lark: Lark
) -> SyntaxProblem:
    """A friendly message, hint and position for a Lark parse error on `text`.

    In order: bad characters; mistakes recognised by their tokens; the catalogue; a missing
    ';' or '}' inferred from what was expected; else "unexpected X; expected Y".
    """
    if isinstance(error, UnexpectedCharacters):
        return _character_problem(error, text)
    previous: Token | None = getattr(error, "previous", None)
    token: Token = (
        error.token if isinstance(error, UnexpectedToken | UnexpectedEOF) else Token("$END", "")
    )
    expected = frozenset(getattr(error, "expected", None) or ())
    shown = "end of file" if token.type == "$END" else str(token)
    if token.type == "$END" or token.line is None:
        span = _after(previous) if previous is not None else _eof_span(text)
    else:
        span = _token_span(token)
    habit = _habit_problem(token, expected, previous, getattr(error, "two_before", None), span)
    if habit is not None:
        return habit
    entry = _match(error, parse_fn)
    if entry is not None:
        return _from_catalogue(entry, error, shown, span)
    if token.type == "$END" and "RBRACE" in expected:
        return SyntaxProblem(
            "missing '}' at the end of the file", "every '{' needs a matching '}'", span
        )
    ends_line = previous is not None and (
        token.type == "RBRACE" or (token.line or 0) > (previous.end_line or 0)
    )
    if "SEMICOLON" in expected and previous is not None and token.type != "$END" and ends_line:
        return SyntaxProblem("missing ';'", None, _after(previous))
    wanted = sorted({_describe_terminal(name, lark) for name in expected})
    message = f"unexpected {_describe_token(token)}"
    if wanted:
        message += "; expected " + (
            wanted[0] if len(wanted) == 1 else ", ".join(wanted[:-1]) + " or " + wanted[-1]
        )
    return SyntaxProblem(message, None, span)
