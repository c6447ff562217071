"""Server-streaming (and bidirectional) calls: retried only until the first response message."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from ..errors import RpcError
from .call_state import CallState, DeadlineReached
from .spec import AttemptFn, AttemptSpec, StreamAttemptFn

__all__ = ["run_streamed"]

T = TypeVar("T")


def _next_of(stream: AsyncIterator[T]) -> AttemptFn[T]:
    """An attempt function that reads the next message of `stream`."""

    def next_message(_spec: AttemptSpec) -> Awaitable[T]:
        return anext(stream)

    return next_message


async def run_streamed(call: CallState, attempt: StreamAttemptFn[T]) -> AsyncIterator[T]:
    """Yield the call's response messages; a failure before the first one is retried as the
    policy allows (and while `call.replayable` says yes), a later one reaches the caller."""
    backoff = call.backoff()
    last: RpcError | None = None
    while True:
        spec = call.next_attempt(last)
        stream = attempt(spec)
        received = False
        try:
            while True:
                try:
                    if call.inline:
                        item = await anext(stream)
                    else:
                        item = await call.bounded(_next_of(stream), spec)
                except StopAsyncIteration:
                    break
                received = True
                yield item
        except DeadlineReached:
            call.deadline_reached()
            raise call.deadline_error() from last
        except RpcError as failure:
            call.record_failure(failure)
            if received:
                raise  # gRPC's rule: no retry once a response message has been seen
            going_on = await call.retry_after(failure, backoff)
            if going_on is None:
                raise
            backoff, last = going_on, failure
            continue
        except GeneratorExit:
            call.release()  # the caller stopped reading: no outcome to record
            raise
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        call.record_success()
        return
