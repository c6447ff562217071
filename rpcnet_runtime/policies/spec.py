"""What the executor hands the channel for one attempt, and the call's idempotency key."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from ..channel import CallOptions
from ..descriptors import MethodPolicy

__all__ = [
    "NO_METADATA",
    "AttemptFn",
    "AttemptSpec",
    "StreamAttemptFn",
    "choose_idempotency_key",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AttemptSpec:
    """What the channel needs to send one attempt."""

    attempt_number: int
    """1 for the first attempt, 2 for the first retry or hedge, and so on."""
    is_hedge: bool
    idempotency_key: str | None
    deadline: float | None
    """Absolute, on the executor's clock: the channel sends the time remaining."""
    metadata: Mapping[str, str]


AttemptFn = Callable[[AttemptSpec], Awaitable[T]]
StreamAttemptFn = Callable[[AttemptSpec], AsyncIterator[T]]

NO_METADATA: Mapping[str, str] = MappingProxyType({})
"""The metadata of a call that sets none (shared, read-only)."""


def choose_idempotency_key(
    policy: MethodPolicy, request: object, options: CallOptions, rng: random.Random
) -> str | None:
    """The call's key: the caller's, else the request's key field, else random if idempotent."""
    if options.idempotency_key:
        return options.idempotency_key
    if policy.idempotency_key_field:
        value = getattr(request, policy.idempotency_key_field, None)
        if value is not None and value != "":
            return str(value)
    if policy.idempotent:
        return f"{rng.getrandbits(128):032x}"
    return None
