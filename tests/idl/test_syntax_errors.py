"""Friendly syntax errors: the message, hint and exact position of common mistakes."""

from __future__ import annotations

import pytest

from rpcnet_idl.diagnostics import Diagnostic, IdlError, render
from rpcnet_idl.parser import parse
from rpcnet_idl.syntax_examples import CATALOGUE

P = "package a.b.v1;\n"


def _error(text: str) -> Diagnostic:
    with pytest.raises(IdlError) as raised:
        parse(text, "bad.rpc")
    (diagnostic,) = raised.value.diagnostics
    assert diagnostic.code == "syntax"
    assert diagnostic.path == "bad.rpc"
    return diagnostic


CASES = [
    # (source, message, line, column)
    (P + "message M {\n  string id = 1\n  int64 n = 2;\n}\n", "missing ';'", 3, 16),
    (P + "message M {\n  string id = 1\n}\n", "missing ';'", 3, 16),
    ("package a.b\n\nmessage M {}\n", "missing ';'", 1, 12),
    (P + 'import "x.rpc"\nmessage M {}\n', "missing ';'", 2, 15),
    (P + "enum E {\n  A = 0\n  B = 1;\n}\n", "missing ';'", 3, 8),
    (P + "service S {\n  rpc A(B) returns (C)\n}\n", "missing ';'", 3, 23),
    (P + "message M {\n  reserved 4, 5\n}\n", "missing ';'", 3, 16),
    (P + "message M {\n  string id = 1;\n", "missing '}' at the end of the file", 3, 17),
    (P + "service S {\n", "missing '}' at the end of the file", 2, 12),
    (
        P + "message M {\n  string id = 1;\n\nmessage N {\n  int32 x = 1;\n}\n",
        "missing '}' before this declaration",
        5,
        1,
    ),
    (P + "struct M {\n}\n", "unknown keyword 'struct'", 2, 1),
    (P + "message A {}\nmesage B {}\n", "unknown keyword 'mesage'", 3, 1),
    ("message M {}\n", "a schema must start with 'package NAME;'", 1, 1),
    ('\n// comment\nimport "a.rpc";\n', "a schema must start with 'package NAME;'", 3, 1),
    (P + "service S {\n  method A(B) returns (C);\n}\n", "unexpected 'method' in a service", 3, 3),
    (P + "message M {\n  string id 1;\n}\n", "missing '=' before the number", 3, 13),
    (P + "message M {\n  string id = x;\n}\n", "missing the number after '='", 3, 15),
    (P + "message M {\n  string id;\n}\n", "missing '= NUMBER' after the field name", 3, 12),
    (P + "message M {\n  string = 1;\n}\n", "missing the field name", 3, 10),
    (
        P + "service S {\n  rpc A(B) return (C);\n}\n",
        "expected 'returns' after the request type",
        3,
        12,
    ),
    (P + "service S {\n  rpc A B returns (C);\n}\n", "expected '(' around the method's type", 3, 9),
    (P + "message M {\n  string id = 1; # note\n}\n", "unexpected character '#'", 3, 18),
    (
        P + "message M {\n  repeated string names = 1;\n}\n",
        "'repeated' is not part of the language",
        3,
        3,
    ),
    (
        P + "message M {\n  string a = 1 @deprecated;\n}\n",
        "annotation '@deprecated' after the element it annotates",
        3,
        16,
    ),
    (P + "service S {\n  rpc A(B) returns (C) {}\n}\n", "a method has no body", 3, 24),
    (P + "enum E {\n  A = 0,\n  B = 1;\n}\n", "entries end with ';', not ','", 3, 8),
    (P + "message M {\n  string a = 1;\n};\n", "no ';' after a declaration's '}'", 4, 2),
    (P + 'message M {}\nimport "x.rpc";\n', "imports come before every declaration", 3, 1),
    (P + "package c.v1;\n", "a schema has one package statement, its first", 2, 1),
    (P + "enum E {\n  A = 0;\n};\nmessage M {}\n", "no ';' after a declaration's '}'", 4, 2),
    (P + 'import "unterminated;\n', "unterminated string", 2, 8),
]


@pytest.mark.parametrize(("text", "message", "line", "column"), CASES)
def test_common_mistakes_get_a_friendly_message_at_the_exact_place(
    text: str, message: str, line: int, column: int
) -> None:
    diagnostic = _error(text)
    assert (diagnostic.message, diagnostic.span.line, diagnostic.span.column) == (
        message,
        line,
        column,
    )
    assert diagnostic.source_line == text.splitlines()[line - 1]


def test_unknown_keyword_suggests_the_nearest_keyword() -> None:
    assert _error(P + "mesage M {}\n").hint == "did you mean 'message'?"
    assert _error(P + "struct M {}\n").hint == (
        "a declaration starts with enum, message, union, error or service"
    )


def test_single_quotes_get_a_hint() -> None:
    diagnostic = _error(P + "import 'x.rpc';\n")
    assert diagnostic.message == 'unexpected character "\'"'
    assert diagnostic.hint == "strings are written in double quotes"


def test_an_unlisted_mistake_names_what_was_expected() -> None:
    diagnostic = _error(P + "message M {\n  map<string string> m = 1;\n}\n")
    assert diagnostic.message == "unexpected 'string'; expected ','"
    assert (diagnostic.span.line, diagnostic.span.column) == (3, 14)


def test_rendering_shows_the_line_and_a_caret() -> None:
    diagnostic = _error(P + "message M {\n  string id = 1\n}\n")
    assert render(diagnostic).splitlines() == [
        "bad.rpc:3:16: error[syntax]: missing ';'",
        "      string id = 1",
        "                   ^",
    ]


@pytest.mark.parametrize(
    ("label", "snippet"),
    [(entry.label, snippet) for entry in CATALOGUE for snippet in entry.examples],
)
def test_every_catalogue_example_fails_and_is_recognised_as_its_own_mistake(
    label: str, snippet: str
) -> None:
    entry = next(e for e in CATALOGUE if e.label == label)
    diagnostic = _error(snippet)
    assert diagnostic.message.split("'")[0] == entry.message.split("'")[0]
