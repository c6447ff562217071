"""Breaking changes of a service: methods (by name), their types, streaming, errors, policies."""

from __future__ import annotations

from . import ast
from .breaking_context import Diff, Place, type_text
from .policies import MethodPolicySpec, annotation, method_policy

__all__ = ["compare_service"]


def _streaming(stream: bool) -> str:
    return "a stream" if stream else "a single message"


def compare_service(
    diff: Diff,
    old: tuple[ast.Schema, ast.Service],
    new: tuple[ast.Schema, ast.Service],
) -> None:
    """Every breaking change between two versions of the same service."""
    old_schema, old_service = old
    new_schema, new_service = new
    new_methods = {m.name: m for m in new_service.methods}
    for method in old_service.methods:
        counterpart = new_methods.get(method.name)
        name = f"{new_service.name}.{method.name}"
        if counterpart is None:
            diff.report(
                "RPC_NO_DELETE",
                f"method {name} was deleted",
                Place(new_schema, new_service.name_span),
                Place(old_schema, method.name_span),
                "deployed clients get UNIMPLEMENTED; deprecate it with @deprecated instead",
            )
            continue
        old_m = (old_schema, old_service, method)
        new_m = (new_schema, new_service, counterpart)
        _compare_signature(diff, old_m, new_m, name)
        _compare_policy(diff, old_m, new_m, name)


MethodIn = tuple[ast.Schema, ast.Service, ast.Method]


def _compare_signature(diff: Diff, old_m: MethodIn, new_m: MethodIn, name: str) -> None:
    old_schema, _, old = old_m
    new_schema, _, new = new_m
    old_place, new_place = Place(old_schema, old.name_span), Place(new_schema, new.name_span)
    for side, old_stream, new_stream in (
        ("request", old.request_stream, new.request_stream),
        ("response", old.response_stream, new.response_stream),
    ):
        if old_stream != new_stream:
            diff.report(
                "RPC_SAME_STREAMING",
                f"the {side} of {name} changed from {_streaming(old_stream)} to "
                f"{_streaming(new_stream)}",
                new_place,
                old_place,
            )
    for rule_id, side, old_ref, new_ref in (
        ("RPC_SAME_REQUEST_TYPE", "request", old.request, new.request),
        ("RPC_SAME_RESPONSE_TYPE", "response", old.response, new.response),
    ):
        if diff.old_shape(old_schema, old_ref) != diff.new_shape(new_schema, new_ref):
            diff.report(
                rule_id,
                f"the {side} type of {name} changed from {type_text(old_ref)} to "
                f"{type_text(new_ref)}",
                Place(new_schema, new_ref.span),
                Place(old_schema, old_ref.span),
                "add a new method instead",
            )
    new_throws = {diff.new_shape(new_schema, t) for t in new.throws}
    for thrown in old.throws:
        if diff.old_shape(old_schema, thrown) not in new_throws:
            diff.report(
                "RPC_THROWS_NO_DELETE",
                f"{name} no longer throws {thrown.name}; callers catching it get a plain RpcError "
                "from servers that still raise it",
                new_place,
                Place(old_schema, thrown.span),
            )


def _annotation_place(schema: ast.Schema, method: ast.Method, name: str) -> Place:
    found = annotation(method.annotations, name)
    return Place(schema, found.span if found is not None else method.name_span)


def _seconds(value: float) -> str:
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"


def _compare_policy(diff: Diff, old_m: MethodIn, new_m: MethodIn, name: str) -> None:
    old_schema, old_service, old = old_m
    new_schema, new_service, new = new_m
    before: MethodPolicySpec = method_policy(diff.old, old_schema, old_service, old)
    after: MethodPolicySpec = method_policy(diff.new, new_schema, new_service, new)

    def report(rule_id: str, message: str, where: str) -> None:
        diff.report(
            rule_id,
            message,
            _annotation_place(new_schema, new, where),
            _annotation_place(old_schema, old, where),
        )

    if before.idempotent and not after.idempotent:
        report(
            "RPC_SAME_IDEMPOTENCY",
            f"{name} is no longer @idempotent; deployed clients still retry and hedge it after "
            "dispatch",
            "idempotent",
        )
    elif before.idempotent and before.key_field != after.key_field:
        report(
            "POLICY_IDEMPOTENCY_KEY_CHANGED",
            f"the idempotency key of {name} changed from {before.key_field or '(random)'} to "
            f"{after.key_field or '(random)'}",
            "idempotent",
        )
    if before.timeout is not None and after.timeout is not None:
        if after.timeout < before.timeout:
            report(
                "POLICY_TIMEOUT_SHORTENED",
                f"the timeout of {name} was shortened from {_seconds(before.timeout)} to "
                f"{_seconds(after.timeout)}",
                "timeout",
            )
    elif before.timeout is None and after.timeout is not None:
        report(
            "POLICY_TIMEOUT_ADDED",
            f"{name} now times out after {_seconds(after.timeout)} (it had no timeout)",
            "timeout",
        )
    if before.retry is not None and after.retry is None:
        report("POLICY_RETRY_REMOVED", f"{name} is no longer retried", "retry")
    elif before.retry is not None and after.retry is not None:
        if after.retry.attempts < before.retry.attempts:
            report(
                "POLICY_RETRY_ATTEMPTS_REDUCED",
                f"retry attempts of {name} reduced from {before.retry.attempts} to "
                f"{after.retry.attempts}",
                "retry",
            )
        kept = {*after.retry.on_statuses, *after.retry.on_errors}
        translated = [*before.retry.on_statuses, *map(diff.translate, before.retry.on_errors)]
        lost = [entry for entry in translated if entry not in kept]
        if lost:
            report(
                "POLICY_RETRY_ON_NARROWED",
                f"{name} is no longer retried on {', '.join(lost)}",
                "retry",
            )
    if before.hedge is not None and after.hedge is None:
        report("POLICY_HEDGE_REMOVED", f"{name} is no longer hedged", "hedge")
