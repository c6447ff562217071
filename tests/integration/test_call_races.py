"""A caller that gives up at once: the server must drop the call quietly (nothing unhandled)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

from rpcnet_runtime.client import ClientChannel
from rpcnet_runtime.policies.executor import AttemptSpec

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def unhandled() -> AsyncIterator[list[dict[str, Any]]]:
    """What reached the loop's exception handler (e.g. "Task exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


async def test_call_stopped_in_the_packet_of_its_request_never_runs(
    channel: ClientChannel, service: Any, interop: ModuleType, unhandled: list[dict[str, Any]]
) -> None:
    client = interop.TestServiceClient(channel)
    assert await client.empty_call(interop.Empty()) == interop.Empty()  # connected
    protocol = channel._protocol
    assert protocol is not None
    inbox = channel._open_call(
        protocol,
        interop.TEST_SERVICE_UNARY_CALL,
        interop.SimpleRequest().to_wire(),
        AttemptSpec(
            attempt_number=1, is_hedge=False, idempotency_key=None, deadline=None, metadata={}
        ),
    )
    # Given up in the same loop turn: STOP_SENDING leaves in the request's packet, ahead of it.
    protocol.abandon(inbox.stream_id)
    # A later call on the same connection is served after the abandoned one was processed.
    response = await client.unary_call(interop.SimpleRequest())
    assert response.attempt == 1
    gc.collect()  # a failed, unreferenced task reports its exception when collected
    assert unhandled == []
    assert len(service.contexts) == 1  # only the second call's handler ran


async def test_reply_of_a_reset_call_is_dropped_quietly(
    channel: ClientChannel, service: Any, interop: ModuleType, unhandled: list[dict[str, Any]]
) -> None:
    client = interop.TestServiceClient(channel)
    call = asyncio.ensure_future(client.sleep_call(interop.Empty()))
    await asyncio.wait_for(service.started.wait(), 5)
    call.cancel()  # the client resets the stream while the handler runs
    await asyncio.wait_for(service.cancelled.wait(), 5)  # the handler was cancelled
    assert await client.empty_call(interop.Empty()) == interop.Empty()
    gc.collect()
    assert unhandled == []
    assert call.cancelled()
