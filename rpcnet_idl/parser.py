"""Parse one `.rpc` file into an `ast.Schema`.

Lark's LALR parser (``grammars/rpcnet.lark``, contextual lexer) calls `ast_builder.Builder` as
it reduces each rule, so frozen AST nodes are built on the fly and no parse tree is; spans come
from each rule's first and last token. Doc comments are found by a separate scan first and
attached by position (see `_doc_comments`). The parse tables are cached per user (`caches`).
A syntax error becomes one ``syntax`` diagnostic, labelled through the catalogue in
`syntax_examples`; semantic problems are the checker's business and never raised here.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any, cast

from lark import Lark, Token
from lark.exceptions import UnexpectedInput

from . import ast, resources
from .ast_builder import INT32_MAX, MAX_FIELD_NUMBER, Builder, SchemaParts, parse_duration
from .caches import load_lark
from .diagnostics import Diagnostic, IdlError

__all__ = ["INT32_MAX", "MAX_FIELD_NUMBER", "parse", "parse_duration"]

_OPTIONS: dict[str, Any] = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": False,
    "maybe_placeholders": False,
}


@functools.cache
def _lark() -> Lark:
    """The parser, with `_BUILDER` as its callbacks (no parse tree is built)."""
    return load_lark(resources.read_text("grammars", "rpcnet.lark"), _BUILDER, **_OPTIONS)


_BUILDER = Builder()
_LOCK = threading.RLock()
"""Guards `_BUILDER`'s per-parse doc comments (parses run one at a time)."""


_SCAN = re.compile(
    r"""(?P<space>\s+)
      | (?P<comment>//[^\n]*)
      | (?P<block>/\*.*?(?:\*/|\Z))
      | (?P<token>"(?:[^"\\\n]|\\.)*"?|[A-Za-z0-9_.@-]+|.)""",
    re.X | re.S,
)


def _doc_comments(text: str) -> dict[tuple[int, int], str]:
    """Map the (line, column) of the first token after each `///` block to the block's text.

    A block is a run of `///` comments on consecutive lines (the marker and one space are
    dropped, lines joined with "\\n"). Ordinary comments between a block and its token are
    skipped; a block interrupted by a blank line restarts. Strings and block comments are
    skipped whole, so `///` inside them is no doc.
    """
    docs: dict[tuple[int, int], str] = {}
    pending: list[str] = []
    last_doc_line = -1
    line, line_start = 1, 0
    for match in _SCAN.finditer(text):
        kind = match.lastgroup
        if kind == "token" and pending:
            docs[(line, match.start() - line_start + 1)] = "\n".join(pending).rstrip()
            pending = []
        elif kind == "comment":
            comment = match.group()
            if comment.startswith("///") and not comment.startswith("////"):
                if line != last_doc_line + 1:
                    pending = []
                body = comment[3:]
                pending.append(body[1:] if body.startswith(" ") else body)
                last_doc_line = line
        newlines = text.count("\n", match.start(), match.end())
        if newlines:
            line += newlines
            line_start = text.rfind("\n", match.start(), match.end()) + 1
    return docs


def _source_line(text: str, line: int) -> str:
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _located_error(text: str) -> UnexpectedInput:
    """Parse `text` (known to be malformed) again, token by token, to find its error and the
    tokens just before it (``previous`` and ``two_before``)."""
    interactive = _lark().parse_interactive(text)
    recent: list[Token | None] = [None, None, None]
    try:
        for token in interactive.iter_parse():
            recent = [recent[1], recent[2], token]
        interactive.feed_eof(recent[2])  # type: ignore[no-untyped-call]
    except UnexpectedInput as error:
        offending = getattr(error, "token", None)
        if offending is not None and offending is recent[2]:
            recent = [None, recent[0], recent[1]]
        error.previous = recent[2]  # type: ignore[attr-defined]
        error.two_before = recent[1]  # type: ignore[attr-defined]
        return error
    raise AssertionError("the text parsed on the second attempt")  # pragma: no cover


def _parse_only(text: str) -> object:
    with _LOCK:
        _BUILDER.set_docs({})
        return _lark().parse(text)


def parse(text: str, path: str) -> ast.Schema:
    """The syntax tree of `text` (read from `path`, used in diagnostics).

    Raises `IdlError` with a single ``syntax`` diagnostic on malformed input.
    """
    docs = _doc_comments(text) if "///" in text else {}
    with _LOCK:
        try:
            _BUILDER.set_docs(docs)
            schema = cast(SchemaParts, _lark().parse(text))
        except UnexpectedInput:
            _BUILDER.set_docs({})
            error = _located_error(text)
            diagnostic = _syntax_diagnostic(error, text, path, _parse_only)
            raise IdlError([diagnostic]) from None
        finally:
            _BUILDER.set_docs({})
    return ast.Schema(
        path=path,
        package=schema.package.name,
        package_span=schema.package.span,
        imports=schema.imports,
        declarations=schema.declarations,
        doc=schema.doc,
    )


def _syntax_diagnostic(
    error: UnexpectedInput, text: str, path: str, parse_fn: Callable[[str], object]
) -> Diagnostic:
    from .syntax_examples import describe_syntax_error  # only a malformed file needs it

    found = describe_syntax_error(error, text, parse_fn, _lark())
    return Diagnostic(
        path=path,
        span=found.span,
        code="syntax",
        message=found.message,
        hint=found.hint,
        source_line=_source_line(text, found.span.line),
    )
