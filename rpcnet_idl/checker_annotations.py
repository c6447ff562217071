"""Annotation and policy rules of the checker.

Codes: unknown-annotation, annotation-misplaced, duplicate-annotation, bad-annotation-argument,
hedge-without-idempotent, retry-with-hedge, idempotency-key-unknown-field,
idempotency-key-not-scalar, retry-after-dispatch.

Decisions:
- An idempotency key field must be a non-optional ``string``, ``bytes`` or integer field of the
  request message: an absent or composite key would silently disable deduplication.
- ``retry-after-dispatch``: a method that is not ``@idempotent`` is only ever retried when the
  request provably never reached a handler, which the runtime reports as UNAVAILABLE. Any other
  entry of ``@retry(on = ...)`` promises more than will happen: DEADLINE_EXCEEDED, INTERNAL,
  UNKNOWN, ABORTED, CANCELLED and schema error types (raised by the handler, so always after
  dispatch) are errors; the other statuses are warnings.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpcnet_runtime.status import Status

from . import ast
from .diagnostics import Severity

if TYPE_CHECKING:
    from .checker import Context

__all__ = ["ANNOTATION_PLACES", "check_annotations"]

ANNOTATION_PLACES: dict[str, frozenset[str]] = {
    "timeout": frozenset({"service", "method"}),
    "idempotent": frozenset({"method"}),
    "retry": frozenset({"method"}),
    "hedge": frozenset({"method"}),
    "status": frozenset({"error"}),
    "deprecated": frozenset(
        {"service", "method", "message", "enum", "union", "error", "field", "enum value"}
    ),
}
"""Each known annotation and the elements it may stand on."""

STATUS_NAMES = tuple(status.name for status in Status)
KEY_SCALARS = frozenset({"string", "bytes", "int32", "int64", "uint32", "uint64"})
MIN_ATTEMPTS, MAX_ATTEMPTS = 2, 10
AFTER_DISPATCH_ERRORS = frozenset(
    {"DEADLINE_EXCEEDED", "INTERNAL", "UNKNOWN", "ABORTED", "CANCELLED"}
)
_BAD = "bad-annotation-argument"


class _Annotations:
    """Argument checks for one annotation, reporting through the context."""

    def __init__(self, ctx: Context, schema: ast.Schema, annotation: ast.Annotation) -> None:
        self.ctx, self.schema, self.a = ctx, schema, annotation

    def bad(self, span: ast.Span, message: str, hint: str | None = None) -> None:
        self.ctx.report(self.schema, span, _BAD, message, hint)

    def expect_args(self, positional: int, named: tuple[str, ...]) -> None:
        """At most `positional` positional arguments; named ones only from `named`."""
        for value in self.a.positional[positional:]:
            where = f"takes {positional} positional argument" + ("" if positional == 1 else "s")
            if named and not positional:
                where = "takes only named arguments: " + ", ".join(f"{n} = ..." for n in named)
            self.bad(value.span, f"@{self.a.name} {where}")
        seen: set[str] = set()
        for key, value in self.a.named:
            if key not in named:
                close = difflib.get_close_matches(key, named, n=1)
                expected = ", ".join(named) if named else "none"
                self.bad(
                    value.span,
                    f"@{self.a.name} has no argument {key!r} (expected: {expected})",
                    f"did you mean {close[0]}?" if close else None,
                )
            elif key in seen:
                self.bad(value.span, f"argument {key!r} of @{self.a.name} is given twice")
            seen.add(key)

    def required(self, value: ast.AnnotationValue | None, what: str) -> bool:
        if value is None:
            self.bad(self.a.span, f"@{self.a.name} needs {what}")
            return False
        return True

    def duration(self, value: ast.AnnotationValue, what: str, positive: bool = True) -> bool:
        if not isinstance(value, ast.DurationValue):
            self.bad(value.span, f"{what} must be a duration such as 250ms, 2s or 1m")
            return False
        if value.seconds < 0 or (positive and value.seconds == 0):
            self.bad(value.span, f"{what} must be {'positive' if positive else 'non-negative'}")
            return False
        return True

    def attempts(self, value: ast.AnnotationValue) -> None:
        if not isinstance(value, ast.IntValue):
            self.bad(value.span, "attempts must be a whole number")
        elif not MIN_ATTEMPTS <= value.value <= MAX_ATTEMPTS:
            self.bad(
                value.span,
                f"attempts = {value.value} is out of range",
                f"attempts counts the first one and runs from {MIN_ATTEMPTS} to {MAX_ATTEMPTS}",
            )

    def names(self, value: ast.AnnotationValue, what: str) -> list[ast.NameValue]:
        items = value.items if isinstance(value, ast.ListValue) else (value,)
        names: list[ast.NameValue] = []
        for item in items:
            if isinstance(item, ast.NameValue):
                names.append(item)
            else:
                self.bad(item.span, f"{what} lists names, such as [UNAVAILABLE]")
        return names

    def status(self, name: ast.NameValue, extra: list[str] | None = None) -> bool:
        """Report `name` unless it is a failure status; `extra` are error names also allowed."""
        if name.name in STATUS_NAMES:
            if name.name == "OK":
                self.bad(name.span, "OK is not a failure status")
                return False
            return True
        close = difflib.get_close_matches(name.name, [*STATUS_NAMES, *(extra or [])], n=1)
        what = "a status or an error type" if extra is not None else "a status"
        self.bad(
            name.span,
            f"{name.name!r} is not {what}",
            f"did you mean {close[0]}?" if close else "statuses are those of gRPC, in capitals",
        )
        return False


def _place(decl: object) -> str:
    names = {
        ast.Service: "service",
        ast.Method: "method",
        ast.Message: "message",
        ast.Enum: "enum",
        ast.Union: "union",
        ast.Error: "error",
        ast.Field: "field",
        ast.EnumValue: "enum value",
    }
    return names[type(decl)]


def _article(place: str) -> str:
    return ("an " if place[0] in "aeiou" else "a ") + place


def _elements(schema: ast.Schema) -> list[tuple[str, tuple[ast.Annotation, ...], object]]:
    found: list[tuple[str, tuple[ast.Annotation, ...], object]] = []
    for decl in schema.declarations:
        found.append((_place(decl), decl.annotations, decl))
        children: tuple[ast.Method | ast.Field | ast.EnumValue, ...]
        if isinstance(decl, ast.Service):
            children = decl.methods
        elif isinstance(decl, ast.Enum):
            children = decl.values
        elif isinstance(decl, ast.Union):
            children = decl.variants
        else:
            children = decl.fields
        found.extend((_place(child), child.annotations, child) for child in children)
    return found


def check_annotations(ctx: Context, schema: ast.Schema) -> None:
    """Every annotation rule for the elements of `schema`."""
    known = sorted(ANNOTATION_PLACES)
    for place, found, element in _elements(schema):
        seen: set[str] = set()
        for a in found:
            if a.name not in ANNOTATION_PLACES:
                close = difflib.get_close_matches(a.name, known, n=1, cutoff=0.5)
                ctx.report(
                    schema,
                    a.span,
                    "unknown-annotation",
                    f"unknown annotation @{a.name}",
                    f"did you mean @{close[0]}?" if close else "known: @" + ", @".join(known),
                )
                continue
            if place not in ANNOTATION_PLACES[a.name]:
                allowed = " or ".join(_article(p) for p in sorted(ANNOTATION_PLACES[a.name]))
                ctx.report(
                    schema,
                    a.span,
                    "annotation-misplaced",
                    f"@{a.name} cannot stand on {_article(place)}",
                    f"@{a.name} goes on {allowed}",
                )
                continue
            if a.name in seen:
                ctx.report(schema, a.span, "duplicate-annotation", f"@{a.name} is given twice")
                continue
            seen.add(a.name)
            _ARGUMENT_CHECKS[a.name](_Annotations(ctx, schema, a))
        if isinstance(element, ast.Method):
            _check_method_policy(ctx, schema, element)


def _check_deprecated(c: _Annotations) -> None:
    c.expect_args(1, ())
    if c.a.positional and not isinstance(c.a.positional[0], ast.StringValue):
        c.bad(c.a.positional[0].span, '@deprecated takes a reason in quotes: @deprecated("why")')


def _check_timeout(c: _Annotations) -> None:
    c.expect_args(1, ("per_attempt",))
    total = c.a.positional[0] if c.a.positional else None
    if c.required(total, "a duration, such as @timeout(2s)") and total is not None:
        c.duration(total, "the timeout")
    per_attempt = c.a.argument("per_attempt")
    if per_attempt is not None and c.duration(per_attempt, "per_attempt"):
        assert isinstance(per_attempt, ast.DurationValue)
        if isinstance(total, ast.DurationValue) and per_attempt.seconds > total.seconds:
            c.bad(per_attempt.span, "per_attempt is longer than the whole call's timeout")


def _check_idempotent(c: _Annotations) -> None:
    c.expect_args(0, ("key",))
    key = c.a.argument("key")
    if key is not None and (not isinstance(key, ast.NameValue) or "." in key.name):
        c.bad(key.span, "key names a field of the request, such as key = id")


def _check_status(c: _Annotations) -> None:
    c.expect_args(1, ())
    value = c.a.positional[0] if c.a.positional else None
    if not c.required(value, "a status, such as @status(RESOURCE_EXHAUSTED)"):
        return
    assert value is not None
    if isinstance(value, ast.NameValue):
        c.status(value)
    else:
        c.bad(value.span, "@status takes a status name, such as RESOURCE_EXHAUSTED")


def _check_retry(c: _Annotations) -> None:
    c.expect_args(0, ("attempts", "backoff", "multiplier", "on"))
    attempts = c.a.argument("attempts")
    if c.required(attempts, "attempts = N (the first attempt included)") and attempts:
        c.attempts(attempts)
    backoff = c.a.argument("backoff")
    if backoff is not None:
        if not isinstance(backoff, ast.RangeValue):
            c.bad(backoff.span, "backoff is a range of durations, such as 100ms..1s")
        elif c.duration(backoff.low, "the initial backoff") & c.duration(
            backoff.high, "the maximum backoff"
        ):
            assert isinstance(backoff.low, ast.DurationValue)
            assert isinstance(backoff.high, ast.DurationValue)
            if backoff.low.seconds > backoff.high.seconds:
                c.bad(backoff.span, "backoff range runs backwards", "write it MIN..MAX")
    multiplier = c.a.argument("multiplier")
    if multiplier is not None and (
        not isinstance(multiplier, ast.IntValue | ast.FloatValue) or multiplier.value < 1
    ):
        c.bad(multiplier.span, "multiplier must be a number of at least 1, such as 2.0")
    on = c.a.argument("on")
    if on is None:
        return
    if isinstance(on, ast.ListValue) and not on.items:
        c.bad(on.span, "on = [] retries nothing", "list statuses or error types, or drop @retry")
    for name in c.names(on, "on"):
        if name.name in STATUS_NAMES:
            c.status(name)
            continue
        symbol = c.ctx.resolve(c.schema, ast.NamedType(name.name, name.span))
        if symbol is None:
            errors = [
                n
                for n, s in c.ctx.program.visible_symbols(c.schema).items()
                if isinstance(s.decl, ast.Error)
            ]
            c.status(name, errors)
        elif not isinstance(symbol.decl, ast.Error):
            c.bad(name.span, f"{name.name!r} is not an error type or a status")


def _check_hedge(c: _Annotations) -> None:
    c.expect_args(0, ("after", "attempts", "non_fatal"))
    after = c.a.argument("after")
    if c.required(after, "after = DURATION, the delay between hedged attempts") and after:
        c.duration(after, "after", positive=False)
    attempts = c.a.argument("attempts")
    if c.required(attempts, "attempts = N (the first attempt included)") and attempts:
        c.attempts(attempts)
    non_fatal = c.a.argument("non_fatal")
    if non_fatal is not None:
        for name in c.names(non_fatal, "non_fatal"):
            c.status(name)


_ARGUMENT_CHECKS: dict[str, Callable[[_Annotations], None]] = {
    "deprecated": _check_deprecated,
    "timeout": _check_timeout,
    "idempotent": _check_idempotent,
    "status": _check_status,
    "retry": _check_retry,
    "hedge": _check_hedge,
}


def _first(annotations: tuple[ast.Annotation, ...], name: str) -> ast.Annotation | None:
    return next((a for a in annotations if a.name == name), None)


def _check_method_policy(ctx: Context, schema: ast.Schema, method: ast.Method) -> None:
    idempotent = _first(method.annotations, "idempotent")
    retry = _first(method.annotations, "retry")
    hedge = _first(method.annotations, "hedge")
    if hedge is not None and idempotent is None:
        ctx.report(
            schema,
            hedge.span,
            "hedge-without-idempotent",
            f"@hedge on {method.name} needs @idempotent",
            "hedging runs the call more than once at the same time; mark the method @idempotent",
        )
    if retry is not None and hedge is not None:
        later = max(retry, hedge, key=lambda a: (a.span.line, a.span.column))
        ctx.report(
            schema,
            later.span,
            "retry-with-hedge",
            f"{method.name} has both @retry and @hedge",
            "choose one: @hedge already re-sends the call",
        )
    if idempotent is not None:
        _check_key(ctx, schema, method, idempotent)
    if retry is not None and idempotent is None:
        _check_retry_after_dispatch(ctx, schema, method, retry)


def _check_key(
    ctx: Context, schema: ast.Schema, method: ast.Method, idempotent: ast.Annotation
) -> None:
    key = idempotent.argument("key")
    if not isinstance(key, ast.NameValue) or not isinstance(method.request, ast.NamedType):
        return
    symbol = ctx.resolve(schema, method.request)
    if symbol is None or not isinstance(symbol.decl, ast.Message | ast.Union):
        return  # reported as unknown-type or invalid-rpc-type
    if isinstance(symbol.decl, ast.Union):
        ctx.report(
            schema,
            key.span,
            "idempotency-key-unknown-field",
            f"the request {symbol.decl.name} is a union, so it has no key field {key.name!r}",
            "use a message request, or a bare @idempotent",
        )
        return
    fields = {f.name: f for f in symbol.decl.fields}
    found = fields.get(key.name)
    if found is None:
        close = difflib.get_close_matches(key.name, list(fields), n=1)
        ctx.report(
            schema,
            key.span,
            "idempotency-key-unknown-field",
            f"{symbol.decl.name} has no field {key.name!r}",
            f"did you mean {close[0]}?" if close else None,
        )
        return
    if not isinstance(found.type, ast.ScalarType) or found.type.name not in KEY_SCALARS:
        ctx.report(
            schema,
            key.span,
            "idempotency-key-not-scalar",
            f"key field {key.name!r} is not a string, bytes or integer field",
            "an idempotency key is a single scalar value",
        )
    elif found.optional:
        ctx.report(
            schema,
            key.span,
            "idempotency-key-not-scalar",
            f"key field {key.name!r} is optional",
            "an absent key would silently turn off deduplication; make the field required",
        )


def _check_retry_after_dispatch(
    ctx: Context, schema: ast.Schema, method: ast.Method, retry: ast.Annotation
) -> None:
    on = retry.argument("on")
    if on is None:
        return
    items = on.items if isinstance(on, ast.ListValue) else (on,)
    hint = (
        "a method that is not @idempotent is retried only when the request never reached a "
        "handler (UNAVAILABLE); mark it @idempotent or drop this entry"
    )
    for item in items:
        if not isinstance(item, ast.NameValue) or item.name in ("UNAVAILABLE", "OK"):
            continue
        if item.name in STATUS_NAMES:
            severity = Severity.ERROR if item.name in AFTER_DISPATCH_ERRORS else Severity.WARNING
            what = f"status {item.name}"
        else:
            symbol = ctx.resolve(schema, ast.NamedType(item.name, item.span))
            if symbol is None or not isinstance(symbol.decl, ast.Error):
                continue
            severity = Severity.ERROR
            what = f"error {item.name}, which only a handler raises,"
        ctx.report(
            schema,
            item.span,
            "retry-after-dispatch",
            f"{method.name} is not @idempotent, so {what} will not be retried",
            hint,
            severity,
        )
