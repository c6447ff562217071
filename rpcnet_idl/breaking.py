"""``rpcnet-gen breaking``: compare two loaded versions of the same schemas.

Types and services are matched by fully qualified name, fields and enum values by number,
methods by name (all three are what the wire carries). The rules, their categories and what
each `--level` fails on are in `breaking_rules`.

A declaration missing from the new version counts as deleted when its file (by the same
relative path) is part of the new load, or no longer exists; a file that still exists but was
not named or imported this time is not compared.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import PurePath

from . import ast
from .breaking_context import Diff, Place
from .breaking_rules import BREAKING_RULES, CATEGORIES, LEVELS, fails_at
from .breaking_services import compare_service
from .breaking_types import compare_type
from .diagnostics import Severity
from .loader import Program, Symbol
from .report import Finding

__all__ = ["BREAKING_RULES", "CATEGORIES", "LEVELS", "apply_level", "compare"]

_DELETE_RULE = {
    ast.Message: "MESSAGE_NO_DELETE",
    ast.Enum: "ENUM_NO_DELETE",
    ast.Union: "UNION_NO_DELETE",
    ast.Error: "ERROR_NO_DELETE",
    ast.Service: "SERVICE_NO_DELETE",
}
_KIND = {
    ast.Message: "message",
    ast.Enum: "enum",
    ast.Union: "union",
    ast.Error: "error",
    ast.Service: "service",
}


def _identity(path: str) -> str:
    return path


def compare(
    old: Program,
    new: Program,
    *,
    key_map: Callable[[str], str] = _identity,
    old_display: Callable[[str], str] = _identity,
) -> list[Finding]:
    """Every breaking change from `old` to `new`, in file, line and column order.

    `key_map` turns an old schema's key (see `Program.key_of`) into the key the same file has
    in `new`; `old_display` turns an old schema's path into the text findings show for it.
    Every finding has severity ERROR; see `apply_level`.
    """
    diff = Diff(old, new, old_display, key_map)
    new_packages = {schema.package for schema in new.schemas.values()}
    for old_root in old.roots:
        new_root = new.schemas.get(key_map(old.key_of(old_root)))
        if new_root is None or new_root.package == old_root.package:
            continue
        diff.report(
            "PACKAGE_SAME",
            f"the package changed from {old_root.package} to {new_root.package}; every method "
            "path and error name in it changes",
            Place(new_root, new_root.package_span),
            Place(old_root, old_root.package_span),
        )
        if old_root.package not in new_packages:
            diff.packages.setdefault(old_root.package, new_root.package)

    for fqn, symbol in old.symbols.items():
        found = new.symbols.get(diff.translate(fqn))
        if found is not None:
            _compare_symbol(diff, symbol, found)
            continue
        new_key = key_map(old.key_of(symbol.schema))
        counterpart = new.schemas.get(new_key)
        if counterpart is None and os.path.exists(new_key):
            continue  # the file is still there but not part of this load: not compared
        _report_deleted(diff, symbol, counterpart)
    diff.findings.sort(key=lambda f: (f.path, f.span.line, f.span.column, f.code))
    return diff.findings


def _report_deleted(diff: Diff, symbol: Symbol, counterpart: ast.Schema | None) -> None:
    kind = _KIND[type(symbol.decl)]
    new_place = Place(counterpart, counterpart.package_span) if counterpart is not None else None
    hint = "deprecate it with @deprecated instead"
    if isinstance(symbol.decl, ast.Service):
        hint = "deployed clients get UNIMPLEMENTED; " + hint
    diff.report(
        _DELETE_RULE[type(symbol.decl)],
        f"{kind} {symbol.fqn} was deleted (or renamed)",
        new_place,
        Place(symbol.schema, symbol.decl.name_span),
        hint,
    )


def _compare_symbol(diff: Diff, old: Symbol, new: Symbol) -> None:
    old_place = Place(old.schema, old.decl.name_span)
    new_place = Place(new.schema, new.decl.name_span)
    if type(old.decl) is not type(new.decl):
        diff.report(
            "TYPE_SAME_KIND",
            f"{new.fqn} changed from a {_KIND[type(old.decl)]} to a {_KIND[type(new.decl)]}",
            new_place,
            old_place,
        )
        return
    old_module = PurePath(diff.key_map(diff.old.key_of(old.schema))).stem
    new_module = PurePath(diff.new.key_of(new.schema)).stem
    if old_module != new_module:
        diff.report(
            "TYPE_SAME_MODULE",
            f"{new.fqn} moved from {old_module}.rpc to {new_module}.rpc, so Python imports it "
            f"from the generated module {new_module} instead of {old_module}",
            new_place,
            old_place,
        )
    if isinstance(old.decl, ast.Service) and isinstance(new.decl, ast.Service):
        compare_service(diff, (old.schema, old.decl), (new.schema, new.decl))
    elif not isinstance(old.decl, ast.Service) and not isinstance(new.decl, ast.Service):
        compare_type(diff, (old.schema, old.decl), (new.schema, new.decl))


def apply_level(findings: list[Finding], level: str) -> list[Finding]:
    """`findings` with severity ERROR where their category fails at `level`, else WARNING."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    return [
        dataclasses.replace(
            f, severity=Severity.ERROR if fails_at(f.category, level) else Severity.WARNING
        )
        for f in findings
    ]
