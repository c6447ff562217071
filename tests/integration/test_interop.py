"""The gRPC interop cases over real QUIC and TLS on loopback, one test per case."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

from rpcnet_runtime import RpcError, Status
from rpcnet_runtime.client import ClientChannel
from rpcnet_runtime.policies.executor import AttemptSpec

pytestmark = pytest.mark.timeout(30)


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def test_empty_unary(interop: ModuleType, client: Any) -> None:
    assert await client.empty_call(interop.Empty()) == interop.Empty()


async def test_large_unary(interop: ModuleType, client: Any) -> None:
    request = interop.SimpleRequest(
        response_size=314_159, payload=interop.Payload(body=bytes(271_828))
    )
    response = await client.unary_call(request)
    assert response.payload.body == bytes(314_159)


async def test_client_streaming(interop: ModuleType, client: Any) -> None:
    sizes = [27_182, 8, 1_828, 45_904]
    requests = [
        interop.StreamingInputCallRequest(payload=interop.Payload(body=bytes(n))) for n in sizes
    ]
    response = await client.streaming_input_call(_aiter(requests))
    assert response.aggregated_payload_size == sum(sizes)


async def test_server_streaming(interop: ModuleType, client: Any) -> None:
    sizes = [31_415, 9, 2_653, 58_979]
    request = interop.StreamingOutputCallRequest(
        response_parameters=[interop.ResponseParameters(size=n) for n in sizes]
    )
    got = [len(r.payload.body) async for r in client.streaming_output_call(request)]
    assert got == sizes


async def test_ping_pong(interop: ModuleType, client: Any) -> None:
    request_sizes = [27_182, 8, 1_828, 45_904]
    response_sizes = [31_415, 9, 2_653, 58_979]
    outgoing: asyncio.Queue[Any] = asyncio.Queue()

    async def requests() -> AsyncIterator[Any]:
        while (item := await outgoing.get()) is not None:
            yield item

    stream = client.full_duplex_call(requests())
    for req_size, resp_size in zip(request_sizes, response_sizes, strict=True):
        await outgoing.put(
            interop.StreamingOutputCallRequest(
                response_parameters=[interop.ResponseParameters(size=resp_size)],
                payload=interop.Payload(body=bytes(req_size)),
            )
        )
        response = await anext(stream)
        assert len(response.payload.body) == resp_size
    await outgoing.put(None)
    assert [r async for r in stream] == []


async def test_empty_stream(client: Any) -> None:
    assert [r async for r in client.full_duplex_call(_aiter([]))] == []


async def test_timeout_on_sleeping_server(interop: ModuleType, client: Any, service: Any) -> None:
    with pytest.raises(RpcError) as info:
        await client.sleep_call(interop.Empty(), timeout=0.2)
    assert info.value.status is Status.DEADLINE_EXCEEDED
    # The server's handler is cancelled by the deadline carried in the header.
    await asyncio.wait_for(service.cancelled.wait(), 5)
    assert service.contexts[0].cancelled()


async def test_cancel_after_begin(interop: ModuleType, client: Any, service: Any) -> None:
    never: asyncio.Event = asyncio.Event()

    async def requests() -> AsyncIterator[Any]:
        await never.wait()
        yield interop.StreamingInputCallRequest()

    task = asyncio.ensure_future(client.streaming_input_call(requests()))
    await asyncio.wait_for(service.started.wait(), 5)  # the handler runs
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The reset reaches the server, which cancels the handler's task.
    await asyncio.wait_for(service.cancelled.wait(), 5)


async def test_cancel_after_first_response(interop: ModuleType, client: Any, service: Any) -> None:
    never: asyncio.Event = asyncio.Event()

    async def requests() -> AsyncIterator[Any]:
        yield interop.StreamingOutputCallRequest(
            response_parameters=[interop.ResponseParameters(size=31_415)],
            payload=interop.Payload(body=bytes(27_182)),
        )
        await never.wait()

    stream = client.full_duplex_call(requests())
    first = await anext(stream)
    assert len(first.payload.body) == 31_415
    await stream.aclose()  # the caller gives up: the stream is reset
    await asyncio.wait_for(service.cancelled.wait(), 5)


async def test_custom_metadata(interop: ModuleType, channel: ClientChannel) -> None:
    metadata = {"x-echo-initial": "test_initial_metadata_value", "x-echo-trailing": "ababab"}
    response, trailing = await channel._attempt_unary(
        interop.TEST_SERVICE_UNARY_CALL,
        interop.SimpleRequest(response_size=314_159, payload=interop.Payload(body=bytes(271_828))),
        AttemptSpec(
            attempt_number=1, is_hedge=False, idempotency_key=None, deadline=None, metadata=metadata
        ),
    )
    assert len(response.payload.body) == 314_159
    assert dict(trailing) == metadata
    # Metadata also travels back with errors.
    with pytest.raises(RpcError) as info:
        await interop.TestServiceClient(channel).unary_call(
            interop.SimpleRequest(response_status=interop.EchoStatus(code=2, message="x")),
            metadata=metadata,
        )
    assert dict(info.value.metadata) == metadata


async def test_status_code_and_message(interop: ModuleType, client: Any) -> None:
    status = interop.EchoStatus(code=2, message="test status message")
    with pytest.raises(RpcError) as info:
        await client.unary_call(interop.SimpleRequest(response_status=status))
    assert info.value.status is Status.UNKNOWN
    assert info.value.message == "test status message"
    stream = client.full_duplex_call(
        _aiter([interop.StreamingOutputCallRequest(response_status=status)])
    )
    with pytest.raises(RpcError) as info:
        [r async for r in stream]
    assert (info.value.status, info.value.message) == (Status.UNKNOWN, "test status message")


async def test_special_status_message(interop: ModuleType, client: Any) -> None:
    message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
    with pytest.raises(RpcError) as info:
        await client.unary_call(
            interop.SimpleRequest(response_status=interop.EchoStatus(code=2, message=message))
        )
    assert info.value.message == message


async def test_unimplemented_method(interop: ModuleType, client: Any) -> None:
    with pytest.raises(RpcError) as info:
        await client.unimplemented_call(interop.Empty())
    assert info.value.status is Status.UNIMPLEMENTED


async def test_unimplemented_service(interop: ModuleType, channel: ClientChannel) -> None:
    with pytest.raises(RpcError) as info:
        await interop.UnimplementedServiceClient(channel).unimplemented_call(interop.Empty())
    assert info.value.status is Status.UNIMPLEMENTED
    assert "rpcnet.interop.v1.UnimplementedService/UnimplementedCall" in info.value.message


async def test_schema_error_arrives_as_its_class(interop: ModuleType, client: Any) -> None:
    with pytest.raises(interop.Overloaded) as info:
        await client.unary_call(interop.SimpleRequest(raise_overloaded=True))
    assert info.value.reason == "busy"
    assert info.value.retry_after_seconds == 1.5


async def test_other_exceptions_are_internal_without_their_text(
    interop: ModuleType, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(RpcError) as info:
        await client.broken_call(interop.Empty())
    assert info.value.status is Status.INTERNAL
    assert "secret" not in info.value.message
    assert any("secret detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_context_carries_deadline_key_and_peer(interop: ModuleType, client: Any) -> None:
    response = await client.unary_call(
        interop.SimpleRequest(fill_peer=True), timeout=5.0, idempotency_key="key-1"
    )
    assert response.peer.startswith("127.0.0.1:")
    assert response.idempotency_key == "key-1"
    assert response.attempt == 1
    assert 0 < response.time_remaining.total_seconds() <= 5.0
