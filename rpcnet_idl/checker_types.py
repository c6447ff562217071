"""Type-reference rules of the checker: field types, map keys, request/response and throws.

Codes: unknown-type, invalid-field-type, invalid-map-key, invalid-rpc-type, throws-not-error,
duplicate-name (a type thrown twice, a method declared twice).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ast

if TYPE_CHECKING:
    from .checker import Context

__all__ = ["check_field_type", "check_service"]

MAP_KEY_SCALARS = frozenset({"string", "int32", "int64", "uint32", "uint64", "bool"})


def check_field_type(ctx: Context, schema: ast.Schema, ref: ast.TypeRef) -> None:
    """unknown-type, invalid-field-type and invalid-map-key for a field's type, recursively."""
    if isinstance(ref, ast.ListType):
        check_field_type(ctx, schema, ref.element)
    elif isinstance(ref, ast.MapType):
        _check_map_key(ctx, schema, ref.key)
        check_field_type(ctx, schema, ref.value)
    elif isinstance(ref, ast.NamedType):
        symbol = ctx.resolve(schema, ref)
        if symbol is None:
            ctx.unknown_type(schema, ref)
        elif isinstance(symbol.decl, ast.Service | ast.Error):
            kind = "a service" if isinstance(symbol.decl, ast.Service) else "an error"
            ctx.report(
                schema,
                ref.span,
                "invalid-field-type",
                f"{ref.name!r} is {kind} and cannot be the type of a field",
                "fields hold scalars, enums, messages, unions, lists and maps",
            )


def _check_map_key(ctx: Context, schema: ast.Schema, key: ast.TypeRef) -> None:
    hint = "a map key is string, an integer type, bool or an enum"
    if isinstance(key, ast.ScalarType):
        if key.name not in MAP_KEY_SCALARS:
            ctx.report(schema, key.span, "invalid-map-key", f"{key.name} cannot be a map key", hint)
    elif isinstance(key, ast.NamedType):
        symbol = ctx.resolve(schema, key)
        if symbol is None:
            ctx.unknown_type(schema, key)
        elif not isinstance(symbol.decl, ast.Enum):
            ctx.report(
                schema, key.span, "invalid-map-key", f"{key.name!r} cannot be a map key", hint
            )
    else:
        ctx.report(schema, key.span, "invalid-map-key", "a container cannot be a map key", hint)


def check_service(ctx: Context, schema: ast.Schema, service: ast.Service) -> None:
    ctx.duplicates(schema, ((m.name, m.name_span) for m in service.methods), "method")
    for method in service.methods:
        for ref, role in ((method.request, "request"), (method.response, "response")):
            _check_rpc_type(ctx, schema, ref, role)
        thrown: set[str] = set()
        for error in method.throws:
            symbol = ctx.resolve(schema, error)
            if symbol is None:
                ctx.unknown_type(schema, error, "error type")
            elif not isinstance(symbol.decl, ast.Error):
                ctx.report(
                    schema,
                    error.span,
                    "throws-not-error",
                    f"{error.name!r} is not an error type",
                    "throws (...) lists types declared with 'error'",
                )
            elif symbol.fqn in thrown:
                ctx.report(schema, error.span, "duplicate-name", f"{error.name!r} is thrown twice")
            thrown.add(symbol.fqn if symbol is not None else error.name)


def _check_rpc_type(ctx: Context, schema: ast.Schema, ref: ast.TypeRef, role: str) -> None:
    hint = "a method's request and response are messages or unions"
    if isinstance(ref, ast.NamedType):
        symbol = ctx.resolve(schema, ref)
        if symbol is None:
            ctx.unknown_type(schema, ref)
            return
        if isinstance(symbol.decl, ast.Message | ast.Union):
            return
        kind = type(symbol.decl).__name__.lower()
        message = (
            f"{role} type {ref.name!r} is an {kind}"
            if kind in ("enum", "error")
            else (f"{role} type {ref.name!r} is a {kind}")
        )
        ctx.report(schema, ref.span, "invalid-rpc-type", message, hint)
        return
    shown = (
        ref.name
        if isinstance(ref, ast.ScalarType)
        else ("a list" if isinstance(ref, ast.ListType) else "a map")
    )
    ctx.report(
        schema,
        ref.span,
        "invalid-rpc-type",
        f"{role} type cannot be {shown}",
        hint + "; wrap it in a message",
    )
