"""A method's resilience policy, read from its annotations with the service's defaults merged in.

Pure functions over a checked program: the checker has already rejected malformed arguments, so
anything unreadable here is simply treated as absent. Durations are seconds.

Defaults: ``@retry`` without ``backoff`` waits 100ms..1s (`DEFAULT_BACKOFF`), without
``multiplier`` grows by 2.0, without ``on`` retries UNAVAILABLE only. ``@hedge`` without
``non_fatal`` treats no status as non-fatal. A service's ``@timeout`` (and ``per_attempt``) and
``@deprecated`` apply to each of its methods unless the method says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import ast

if TYPE_CHECKING:
    from .loader import Program

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_MULTIPLIER",
    "DEFAULT_RETRY_ON",
    "HedgeSpec",
    "MethodPolicySpec",
    "RetrySpec",
    "annotation",
    "duration_seconds",
    "method_policy",
]

DEFAULT_BACKOFF = (0.1, 1.0)
"""``@retry`` backoff when none is given: 100ms..1s."""
DEFAULT_MULTIPLIER = 2.0
DEFAULT_RETRY_ON = ("UNAVAILABLE",)
"""``@retry`` statuses when ``on`` is not given."""


@dataclass(frozen=True)
class RetrySpec:
    attempts: int
    """Attempts in all, the first included."""
    initial_backoff: float
    max_backoff: float
    multiplier: float
    on_statuses: tuple[str, ...]
    """Status names, such as ``UNAVAILABLE``."""
    on_errors: tuple[str, ...]
    """Fully qualified schema error names."""


@dataclass(frozen=True)
class HedgeSpec:
    attempts: int
    delay: float
    """Seconds between hedged attempts."""
    non_fatal: tuple[str, ...]
    """Status names after which the remaining hedges go on."""


@dataclass(frozen=True)
class MethodPolicySpec:
    timeout: float | None
    """Seconds for the whole logical call."""
    attempt_timeout: float | None
    idempotent: bool
    key_field: str | None
    """The schema field name of ``@idempotent(key = ...)``."""
    retry: RetrySpec | None
    hedge: HedgeSpec | None
    deprecated: str | None
    """None when current; the reason, or ``"deprecated"`` for a bare ``@deprecated``."""


def annotation(annotations: tuple[ast.Annotation, ...], name: str) -> ast.Annotation | None:
    """The first annotation called `name`, or None."""
    for found in annotations:
        if found.name == name:
            return found
    return None


def duration_seconds(value: ast.AnnotationValue | None) -> float | None:
    """The seconds of a duration literal, or None for anything else."""
    return value.seconds if isinstance(value, ast.DurationValue) else None


def _first(found: ast.Annotation | None, key: str | None = None) -> ast.AnnotationValue | None:
    if found is None:
        return None
    if key is not None:
        return found.argument(key)
    return found.positional[0] if found.positional else None


def _int(value: ast.AnnotationValue | None, default: int) -> int:
    return value.value if isinstance(value, ast.IntValue) else default


def _float(value: ast.AnnotationValue | None, default: float) -> float:
    if isinstance(value, ast.IntValue | ast.FloatValue):
        return float(value.value)
    return default


def _names(value: ast.AnnotationValue | None) -> list[ast.NameValue]:
    if isinstance(value, ast.ListValue):
        return [item for item in value.items if isinstance(item, ast.NameValue)]
    if isinstance(value, ast.NameValue):
        return [value]
    return []


def _deprecated(found: ast.Annotation | None) -> str | None:
    if found is None:
        return None
    reason = _first(found)
    return reason.value if isinstance(reason, ast.StringValue) else "deprecated"


def _status_names() -> frozenset[str]:
    from rpcnet_runtime.status import Status

    return frozenset(status.name for status in Status)


def _retry(program: Program, schema: ast.Schema, found: ast.Annotation) -> RetrySpec:
    low, high = DEFAULT_BACKOFF
    backoff = found.argument("backoff")
    if isinstance(backoff, ast.RangeValue):
        low = duration_seconds(backoff.low) or low
        high = duration_seconds(backoff.high) or high
    on = found.argument("on")
    statuses: list[str] = []
    errors: list[str] = []
    known = _status_names()
    for name in _names(on):
        if name.name in known:
            statuses.append(name.name)
            continue
        symbol = program.resolve(schema, ast.NamedType(name.name, name.span))
        if symbol is not None:
            errors.append(symbol.fqn)
    if on is None:
        statuses = list(DEFAULT_RETRY_ON)
    return RetrySpec(
        attempts=_int(found.argument("attempts"), 2),
        initial_backoff=low,
        max_backoff=high,
        multiplier=_float(found.argument("multiplier"), DEFAULT_MULTIPLIER),
        on_statuses=tuple(statuses),
        on_errors=tuple(errors),
    )


def _hedge(found: ast.Annotation) -> HedgeSpec:
    known = _status_names()
    return HedgeSpec(
        attempts=_int(found.argument("attempts"), 2),
        delay=duration_seconds(found.argument("after")) or 0.0,
        non_fatal=tuple(n.name for n in _names(found.argument("non_fatal")) if n.name in known),
    )


def method_policy(
    program: Program, schema: ast.Schema, service: ast.Service, method: ast.Method
) -> MethodPolicySpec:
    """The policy of `method` (of `service` in `schema`), service defaults merged in."""
    own_timeout = annotation(method.annotations, "timeout")
    service_timeout = annotation(service.annotations, "timeout")
    timeout = duration_seconds(_first(own_timeout))
    if timeout is None:
        timeout = duration_seconds(_first(service_timeout))
    attempt_timeout = duration_seconds(_first(own_timeout, "per_attempt"))
    if attempt_timeout is None:
        attempt_timeout = duration_seconds(_first(service_timeout, "per_attempt"))
    idempotent = annotation(method.annotations, "idempotent")
    key = _first(idempotent, "key")
    retry = annotation(method.annotations, "retry")
    hedge = annotation(method.annotations, "hedge")
    deprecated = _deprecated(annotation(method.annotations, "deprecated"))
    if deprecated is None:
        deprecated = _deprecated(annotation(service.annotations, "deprecated"))
    return MethodPolicySpec(
        timeout=timeout,
        attempt_timeout=attempt_timeout,
        idempotent=idempotent is not None,
        key_field=key.name if isinstance(key, ast.NameValue) else None,
        retry=_retry(program, schema, retry) if retry is not None else None,
        hedge=_hedge(hedge) if hedge is not None else None,
        deprecated=deprecated,
    )
