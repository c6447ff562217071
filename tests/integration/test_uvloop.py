"""The runtime on uvloop's event loop (the `uvloop` extra): every call kind, deadlines, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from types import ModuleType
from typing import Any

import pytest

from rpcnet_runtime import RpcError, Status
from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.client import connect
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ClientTLS, ServerTLS

uvloop = pytest.importorskip("uvloop")
pytestmark = pytest.mark.timeout(30)


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _every_call_kind(interop: ModuleType, certs: DevCerts, service: Any) -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
    server = Server("127.0.0.1", 0, tls=ServerTLS(certs.server_cert, certs.server_key))
    server.add_service(service)
    await server.start()
    try:
        async with connect(f"127.0.0.1:{server.port}", tls=ClientTLS(ca=certs.ca)) as channel:
            client = interop.TestServiceClient(channel)
            reply = await client.unary_call(interop.SimpleRequest(response_size=70_000))
            assert len(reply.payload.body) == 70_000
            sizes = [10, 200_000, 3]
            request = interop.StreamingOutputCallRequest(
                response_parameters=[interop.ResponseParameters(size=s) for s in sizes]
            )
            assert [len(r.payload.body) async for r in client.streaming_output_call(request)] == (
                sizes
            )
            uploads = [
                interop.StreamingInputCallRequest(payload=interop.Payload(body=bytes(n)))
                for n in (5, 50_000, 7)
            ]
            total = await client.streaming_input_call(_aiter(uploads))
            assert total.aggregated_payload_size == 50_012
            assert [r async for r in client.full_duplex_call(_aiter([]))] == []
            with pytest.raises(RpcError) as info:
                await client.sleep_call(interop.Empty(), timeout=0.2)
            assert info.value.status is Status.DEADLINE_EXCEEDED
            await asyncio.gather(*(client.empty_call(interop.Empty()) for _ in range(200)))
            # uvloop's clock ticks in milliseconds: aioquic's own pacing bursts are kept.
            protocol = channel._protocol
            assert protocol is not None and protocol.core.pacing_burst is None
            assert all(p.core.pacing_burst is None for p in server._protocols)
    finally:
        await server.stop(grace=0)


def test_every_call_kind_runs_on_uvloop(interop: ModuleType, certs: DevCerts, service: Any) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_every_call_kind(interop, certs, service))
