"""Lint rules on names, enums, comments and deprecated types; the rule registry they share.

A rule is a function from (program, schema) to `Hit`s, registered with `rule(...)` under a stable
id and a category. Policy rules live in `lint_rules_policy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from . import ast
from .diagnostics import Severity
from .loader import Program

__all__ = [
    "RULES",
    "Hit",
    "LintRule",
    "is_deprecated",
    "kind_of",
    "named_types",
    "rule",
    "to_pascal",
    "to_snake",
    "to_upper_snake",
]


@dataclass(frozen=True, slots=True)
class Hit:
    """One finding of a rule, in the schema it was given."""

    span: ast.Span
    message: str
    hint: str | None = None


Check = Callable[[Program, ast.Schema], Iterable[Hit]]


@dataclass(frozen=True, slots=True)
class LintRule:
    id: str
    category: str
    default: bool
    """Whether the rule runs without being enabled in the configuration."""
    severity: Severity
    summary: str
    check: Check


RULES: dict[str, LintRule] = {}


def rule(
    rule_id: str,
    category: str,
    summary: str,
    *,
    default: bool = True,
    severity: Severity = Severity.ERROR,
) -> Callable[[Check], Check]:
    """Register a check under `rule_id`."""

    def register(check: Check) -> Check:
        RULES[rule_id] = LintRule(rule_id, category, default, severity, summary, check)
        return check

    return register


# --- helpers --------------------------------------------------------------------------------

_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def _words(name: str) -> list[str]:
    return _WORDS.findall(name)


def to_pascal(name: str) -> str:
    return "".join(w[:1].upper() + w[1:].lower() for w in _words(name))


def to_snake(name: str) -> str:
    return "_".join(w.lower() for w in _words(name))


def to_upper_snake(name: str) -> str:
    return "_".join(w.upper() for w in _words(name))


def is_deprecated(annotations: tuple[ast.Annotation, ...]) -> bool:
    return any(a.name == "deprecated" for a in annotations)


def named_types(ref: ast.TypeRef) -> Iterator[ast.NamedType]:
    """Every named type in `ref`, containers unwrapped."""
    if isinstance(ref, ast.NamedType):
        yield ref
    elif isinstance(ref, ast.ListType):
        yield from named_types(ref.element)
    elif isinstance(ref, ast.MapType):
        yield from named_types(ref.key)
        yield from named_types(ref.value)


def _members(decl: ast.Declaration) -> tuple[ast.Field, ...]:
    if isinstance(decl, ast.Message | ast.Error):
        return decl.fields
    if isinstance(decl, ast.Union):
        return decl.variants
    return ()


_KIND = {
    ast.Message: "message",
    ast.Enum: "enum",
    ast.Union: "union",
    ast.Error: "error",
    ast.Service: "service",
}


def kind_of(decl: ast.Declaration) -> str:
    return _KIND[type(decl)]


# --- naming ---------------------------------------------------------------------------------

_PASCAL = re.compile(r"[A-Z][a-zA-Z0-9]*")
_SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*")
_PACKAGE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_VERSION = re.compile(r"v[0-9]+((alpha|beta)[0-9]*)?")


@rule("PACKAGE_LOWER_DOT_CASE", "naming", "A package is lower-case words joined by dots.")
def _package_case(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    if not _PACKAGE.fullmatch(schema.package):
        fixed = ".".join(to_snake(part) for part in schema.package.split("."))
        yield Hit(
            schema.package_span,
            f"package {schema.package!r} should be lower.dotted",
            f"use {fixed!r}",
        )


@rule(
    "PACKAGE_VERSION_SUFFIX",
    "naming",
    "A package ends in a version such as v1 or v2beta1.",
    default=False,
)
def _package_version(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    if not _VERSION.fullmatch(schema.package.rsplit(".", 1)[-1]):
        yield Hit(
            schema.package_span,
            f"package {schema.package!r} does not end in a version",
            f"use {schema.package + '.v1'!r}",
        )


@rule("TYPE_PASCAL_CASE", "naming", "Messages, enums, unions and errors are PascalCase.")
def _type_case(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if not isinstance(decl, ast.Service) and not _PASCAL.fullmatch(decl.name):
            yield Hit(
                decl.name_span,
                f"{kind_of(decl)} name {decl.name!r} should be PascalCase",
                f"use {to_pascal(decl.name)!r}",
            )


@rule("SERVICE_PASCAL_CASE", "naming", "Services are PascalCase.")
def _service_case(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if isinstance(decl, ast.Service) and not _PASCAL.fullmatch(decl.name):
            yield Hit(
                decl.name_span,
                f"service name {decl.name!r} should be PascalCase",
                f"use {to_pascal(decl.name)!r}",
            )


@rule("RPC_PASCAL_CASE", "naming", "Methods are PascalCase in the schema (snake_case in Python).")
def _rpc_case(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if isinstance(decl, ast.Service):
            for method in decl.methods:
                if not _PASCAL.fullmatch(method.name):
                    yield Hit(
                        method.name_span,
                        f"method name {method.name!r} should be PascalCase",
                        f"use {to_pascal(method.name)!r}",
                    )


@rule("FIELD_LOWER_SNAKE_CASE", "naming", "Fields and union variants are lower_snake_case.")
def _field_case(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        for member in _members(decl):
            if not _SNAKE.fullmatch(member.name):
                yield Hit(
                    member.name_span,
                    f"field name {member.name!r} of {decl.name} should be lower_snake_case",
                    f"use {to_snake(member.name)!r}",
                )


@rule("ENUM_VALUE_UPPER_SNAKE_CASE", "naming", "Enum values are UPPER_SNAKE_CASE.")
def _enum_value_case(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if isinstance(decl, ast.Enum):
            for value in decl.values:
                if not _UPPER_SNAKE.fullmatch(value.name):
                    yield Hit(
                        value.name_span,
                        f"enum value {value.name!r} of {decl.name} should be UPPER_SNAKE_CASE",
                        f"use {to_upper_snake(value.name)!r}",
                    )


# --- enums ----------------------------------------------------------------------------------


@rule("ENUM_ZERO_VALUE_FIRST", "style", "An enum's first value is 0 (the default on the wire).")
def _enum_zero_first(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if isinstance(decl, ast.Enum) and decl.values and decl.values[0].number != 0:
            first = decl.values[0]
            yield Hit(
                first.number_span,
                f"the first value of enum {decl.name} is {first.number}, not 0",
                f"start with {to_upper_snake(decl.name)}_UNSPECIFIED = 0",
            )


@rule(
    "ENUM_ZERO_VALUE_SUFFIX",
    "style",
    "An enum's zero value ends in _UNSPECIFIED.",
    default=False,
)
def _enum_zero_suffix(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if not isinstance(decl, ast.Enum):
            continue
        for value in decl.values:
            if value.number == 0 and not value.name.endswith("_UNSPECIFIED"):
                yield Hit(
                    value.name_span,
                    f"the zero value {value.name} of enum {decl.name} does not end in _UNSPECIFIED",
                    f"use {to_upper_snake(decl.name)}_UNSPECIFIED",
                )


# --- comments -------------------------------------------------------------------------------


@rule("SERVICE_COMMENTS", "comments", "A service has a /// doc comment.", default=False)
def _service_comments(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if isinstance(decl, ast.Service) and not (decl.doc or "").strip():
            yield Hit(decl.name_span, f"service {decl.name} has no /// doc comment")


@rule("RPC_COMMENTS", "comments", "A method has a /// doc comment.", default=False)
def _rpc_comments(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if isinstance(decl, ast.Service):
            for method in decl.methods:
                if not (method.doc or "").strip():
                    yield Hit(
                        method.name_span, f"method {decl.name}.{method.name} has no /// comment"
                    )


# --- deprecation ----------------------------------------------------------------------------


def _deprecated_uses(
    program: Program, schema: ast.Schema, ref: ast.TypeRef, user: str
) -> Iterator[Hit]:
    for named in named_types(ref):
        symbol = program.resolve(schema, named)
        if symbol is not None and is_deprecated(symbol.decl.annotations):
            yield Hit(
                named.span,
                f"{user} uses the deprecated {kind_of(symbol.decl)} {symbol.fqn}",
                "deprecate the user too, or move to the replacement",
            )


@rule(
    "DEPRECATED_USE",
    "deprecation",
    "A current field or method uses a deprecated type.",
    severity=Severity.WARNING,
)
def _deprecated_use(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for decl in schema.declarations:
        if is_deprecated(decl.annotations):
            continue
        if isinstance(decl, ast.Service):
            for method in decl.methods:
                if is_deprecated(method.annotations):
                    continue
                user = f"method {decl.name}.{method.name}"
                for ref in (method.request, method.response, *method.throws):
                    yield from _deprecated_uses(program, schema, ref, user)
            continue
        for member in _members(decl):
            if not is_deprecated(member.annotations):
                user = f"field {decl.name}.{member.name}"
                yield from _deprecated_uses(program, schema, member.type, user)
