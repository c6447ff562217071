"""Lint rules on method policies: retries, hedging and timeouts that cannot do what they say."""

from __future__ import annotations

from collections.abc import Iterator

from . import ast
from .diagnostics import Severity
from .lint_rules import Hit, rule
from .loader import Program
from .policies import MethodPolicySpec, annotation, method_policy

__all__ = ["PERMANENT_STATUSES", "PRE_DISPATCH_STATUSES"]

PRE_DISPATCH_STATUSES = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED"})
"""Statuses the runtime may see before a handler ran (connection failure, draining, shedding)."""

PERMANENT_STATUSES = frozenset(
    {
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "UNAUTHENTICATED",
        "DATA_LOSS",
    }
)
"""Statuses that the same request meets again on every attempt."""


def _methods(
    program: Program, schema: ast.Schema
) -> Iterator[tuple[ast.Service, ast.Method, MethodPolicySpec]]:
    for decl in schema.declarations:
        if isinstance(decl, ast.Service):
            for method in decl.methods:
                yield decl, method, method_policy(program, schema, decl, method)


def _seconds(value: float) -> str:
    return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"


def _on_items(method: ast.Method) -> list[ast.NameValue]:
    found = annotation(method.annotations, "retry")
    on = found.argument("on") if found is not None else None
    if isinstance(on, ast.ListValue):
        return [item for item in on.items if isinstance(item, ast.NameValue)]
    return [on] if isinstance(on, ast.NameValue) else []


def _where(method: ast.Method, name: str, key: str | None = None) -> ast.Span:
    found = annotation(method.annotations, name)
    if found is None:
        return method.name_span
    value = found.argument(key) if key is not None else None
    return value.span if value is not None else found.span


@rule(
    "RETRY_NON_IDEMPOTENT_AFTER_DISPATCH",
    "policy",
    "A method that is not @idempotent lists in @retry(on=...) a status or error that occurs "
    "after dispatch; the runtime never retries those.",
)
def _retry_after_dispatch(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for service, method, policy in _methods(program, schema):
        if policy.retry is None or policy.idempotent:
            continue
        items = _on_items(method)
        if not items:  # the default `on` list is pre-dispatch only
            continue
        for item in items:
            if item.name in PRE_DISPATCH_STATUSES:
                continue
            yield Hit(
                item.span,
                f"{service.name}.{method.name} is not @idempotent, so it is retried only when the "
                f"request never reached a handler; {item.name} occurs after dispatch",
                "mark the method @idempotent (with a key) or list only UNAVAILABLE and "
                "RESOURCE_EXHAUSTED",
            )


@rule(
    "RETRY_ON_PERMANENT_STATUS",
    "policy",
    "@retry(on=...) lists a status that every retry meets again.",
    severity=Severity.WARNING,
)
def _retry_permanent(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for service, method, policy in _methods(program, schema):
        if policy.retry is None:
            continue
        for item in _on_items(method):
            if item.name in PERMANENT_STATUSES:
                yield Hit(
                    item.span,
                    f"{service.name}.{method.name} retries on {item.name}, which the same "
                    "request meets again on every attempt",
                    "retry on transient statuses such as UNAVAILABLE",
                )


@rule(
    "HEDGE_DELAY_EXCEEDS_TIMEOUT",
    "policy",
    "Hedged attempts are due after the call's @timeout, so they are never sent.",
)
def _hedge_delay(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for service, method, policy in _methods(program, schema):
        hedge, timeout = policy.hedge, policy.timeout
        if hedge is None or timeout is None:
            continue
        name = f"{service.name}.{method.name}"
        last = hedge.delay * (hedge.attempts - 1)
        if hedge.delay >= timeout:
            message = (
                f"{name} hedges after {_seconds(hedge.delay)} but times out after "
                f"{_seconds(timeout)}: no hedge is ever sent"
            )
        elif last >= timeout:
            message = (
                f"{name}'s hedge {hedge.attempts} is due after {_seconds(last)}, past the "
                f"timeout of {_seconds(timeout)}"
            )
        else:
            continue
        yield Hit(_where(method, "hedge", "after"), message, "shorten the delay or lower attempts")


@rule(
    "RETRY_BACKOFF_EXCEEDS_TIMEOUT",
    "policy",
    "A retry's backoff can wait as long as the whole @timeout.",
)
def _retry_backoff(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for service, method, policy in _methods(program, schema):
        retry, timeout = policy.retry, policy.timeout
        if retry is None or timeout is None or retry.max_backoff < timeout:
            continue
        yield Hit(
            _where(method, "retry", "backoff"),
            f"{service.name}.{method.name} may wait up to {_seconds(retry.max_backoff)} between "
            f"attempts, not less than its timeout of {_seconds(timeout)}",
            "cap the backoff well below the timeout",
        )


@rule(
    "ATTEMPT_TIMEOUT_EXCEEDS_TIMEOUT",
    "policy",
    "A per-attempt timeout is not shorter than the timeout of the whole call.",
)
def _attempt_timeout(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for service, method, policy in _methods(program, schema):
        per, timeout = policy.attempt_timeout, policy.timeout
        if per is None or timeout is None or per < timeout:
            continue
        yield Hit(
            _where(method, "timeout", "per_attempt"),
            f"{service.name}.{method.name}: per-attempt timeout {_seconds(per)} is not shorter "
            f"than the call's timeout {_seconds(timeout)}, so it never applies",
            "drop per_attempt or make it shorter",
        )


@rule(
    "RETRY_WITHOUT_TIMEOUT",
    "policy",
    "A method with @retry or @hedge has no @timeout (on it or its service).",
    default=False,
)
def _retry_without_timeout(program: Program, schema: ast.Schema) -> Iterator[Hit]:
    for service, method, policy in _methods(program, schema):
        if policy.timeout is None and (policy.retry is not None or policy.hedge is not None):
            kind = "retry" if policy.retry is not None else "hedge"
            yield Hit(
                _where(method, kind),
                f"{service.name}.{method.name} has @{kind} but no @timeout bounding its attempts",
                "add @timeout to the method or its service",
            )
