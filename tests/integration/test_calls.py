"""Call semantics over loopback: deadline inheritance, error mapping, streaming edge cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

from rpcnet_runtime import CallContext, ClientTLS, RpcError, Server, ServerTLS, Status, connect
from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.config import ClientConfig

pytestmark = pytest.mark.timeout(30)


async def _serve(certs: DevCerts, service: Any) -> Server:
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    server.add_service(service)
    await server.start()
    return server


async def test_nested_calls_inherit_the_callers_deadline(
    certs: DevCerts, interop: ModuleType
) -> None:
    seen: dict[str, float | None] = {}
    tls = ClientTLS(ca=certs.ca)

    class Relay(interop.TestServiceBase):  # type: ignore[misc, name-defined]
        port = 0

        async def empty_call(self, request: Any, ctx: CallContext) -> Any:
            seen["outer"] = ctx.time_remaining()
            async with connect(f"127.0.0.1:{self.port}", tls=tls) as channel:
                # No timeout given: the inner call inherits what is left of ours.
                await interop.TestServiceClient(channel).unary_call(interop.SimpleRequest())
            return interop.Empty()

        async def unary_call(self, request: Any, ctx: CallContext) -> Any:
            seen["inner"] = ctx.time_remaining()
            return interop.SimpleResponse()

    relay = Relay()
    server = await _serve(certs, relay)
    relay.port = server.port
    try:
        async with connect(f"127.0.0.1:{server.port}", tls=tls) as channel:
            await interop.TestServiceClient(channel).empty_call(interop.Empty(), timeout=3.0)
    finally:
        await server.stop(grace=0)
    outer, inner = seen["outer"], seen["inner"]
    assert outer is not None and inner is not None
    assert 0 < inner <= outer <= 3.0


async def test_undeclared_schema_error_arrives_as_unknown(
    certs: DevCerts, interop: ModuleType
) -> None:
    class Thrower(interop.TestServiceBase):  # type: ignore[misc, name-defined]
        async def empty_call(self, request: Any, ctx: CallContext) -> Any:
            raise interop.Overloaded(reason="not declared by EmptyCall")

    server = await _serve(certs, Thrower())
    try:
        async with connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca)) as channel:
            with pytest.raises(RpcError) as info:
                await interop.TestServiceClient(channel).empty_call(interop.Empty())
    finally:
        await server.stop(grace=0)
    assert type(info.value) is RpcError
    assert info.value.status is Status.UNKNOWN
    assert "rpcnet.interop.v1.Overloaded" in info.value.message


async def test_handler_deadline_reaches_the_context_and_expired_calls_never_run(
    certs: DevCerts, interop: ModuleType, service: Any
) -> None:
    server = await _serve(certs, service)
    try:
        async with connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca)) as channel:
            client = interop.TestServiceClient(channel)
            with pytest.raises(RpcError) as info:
                await client.unary_call(interop.SimpleRequest(), timeout=0)
            assert info.value.status is Status.DEADLINE_EXCEEDED
            assert info.value.not_processed  # never left the caller
            response = await client.unary_call(interop.SimpleRequest(), timeout=2.0)
            assert 0 < response.time_remaining.total_seconds() <= 2.0
            assert len(service.contexts) == 1
    finally:
        await server.stop(grace=0)


async def test_server_streaming_error_after_messages(interop: ModuleType, client: Any) -> None:
    request = interop.StreamingOutputCallRequest(
        response_parameters=[interop.ResponseParameters(size=3)] * 2,
        response_status=interop.EchoStatus(code=int(Status.ABORTED), message="half way"),
    )
    got = []
    with pytest.raises(RpcError) as info:
        async for response in client.streaming_output_call(request):
            got.append(len(response.payload.body))
    assert got == [3, 3]
    assert (info.value.status, info.value.message) == (Status.ABORTED, "half way")


async def test_request_iterator_failure_reaches_the_caller(
    interop: ModuleType, client: Any
) -> None:
    async def requests() -> AsyncIterator[Any]:
        yield interop.StreamingInputCallRequest()
        raise KeyError("caller bug")

    with pytest.raises(KeyError):
        await client.streaming_input_call(requests())
    assert await client.empty_call(interop.Empty()) == interop.Empty()


async def test_response_above_the_clients_frame_limit(
    certs: DevCerts, interop: ModuleType, service: Any
) -> None:
    server = await _serve(certs, service)
    try:
        async with connect(
            f"127.0.0.1:{server.port}",
            tls=ClientTLS(ca=certs.ca),
            config=ClientConfig(max_frame_size=10_000),
        ) as channel:
            client = interop.TestServiceClient(channel)
            with pytest.raises(RpcError) as info:
                await client.unary_call(interop.SimpleRequest(response_size=20_000))
            assert info.value.status is Status.RESOURCE_EXHAUSTED
            assert (await client.unary_call(interop.SimpleRequest(response_size=10))).payload
    finally:
        await server.stop(grace=0)


async def test_many_concurrent_calls_share_one_connection(
    interop: ModuleType, client: Any, channel: Any
) -> None:
    sizes = list(range(200))
    responses = await asyncio.gather(
        *(client.unary_call(interop.SimpleRequest(response_size=n)) for n in sizes)
    )
    assert [len(r.payload.body) for r in responses] == sizes
    assert channel._protocol.calls == {}


async def test_closed_channel_refuses_calls(
    interop: ModuleType, server: Server, certs: DevCerts
) -> None:
    channel = await connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca))
    await channel.close()
    with pytest.raises(RpcError) as info:
        await interop.TestServiceClient(channel).empty_call(interop.Empty())
    assert info.value.status is Status.UNAVAILABLE and info.value.not_processed


async def test_concurrent_calls_share_one_failed_dial(
    certs: DevCerts, interop: ModuleType, service: Any
) -> None:
    server = await _serve(certs, service)
    port = server.port
    await server.stop(grace=0)  # nothing listens there any more
    channel = connect(
        f"127.0.0.1:{port}",
        tls=ClientTLS(ca=certs.ca),
        config=ClientConfig(connect_timeout=0.3),
    )
    client = interop.TestServiceClient(channel)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(
        *(client.empty_call(interop.Empty()) for _ in range(20)), return_exceptions=True
    )
    assert loop.time() - started < 3.0  # one dial for all, not twenty in a row
    for result in results:
        assert isinstance(result, RpcError)
        assert result.status is Status.UNAVAILABLE and result.not_processed
    await channel.close()


def test_add_service_checks_its_argument(certs: DevCerts, interop: ModuleType) -> None:
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    with pytest.raises(TypeError, match="not a generated service skeleton"):
        server.add_service(object())
    server.add_service(interop.TestServiceBase())
    with pytest.raises(ValueError, match="already added"):
        server.add_service(interop.TestServiceBase())
    assert server.services == {"rpcnet.interop.v1.TestService"}
    assert "stopped" in repr(server)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


async def test_cancelling_a_unary_caller_cancels_the_handler(
    interop: ModuleType, client: Any, service: Any, channel: Any
) -> None:
    call = asyncio.ensure_future(client.sleep_call(interop.Empty()))  # no deadline
    await asyncio.wait_for(service.started.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(service.cancelled.wait(), 5)
    assert service.contexts[0].cancelled()
    assert channel._protocol.calls == {}
