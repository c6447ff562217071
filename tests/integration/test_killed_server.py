"""A server process killed with SIGKILL: its closed UDP port fails calls at once, not after the
idle timeout (Linux reports the ICMP port-unreachable replies as refusals)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from rpcnet_runtime import RpcError, Status
from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.client import connect
from rpcnet_runtime.config import ClientConfig
from rpcnet_runtime.tls import ClientTLS

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(sys.platform != "linux", reason="ICMP errors on unconnected UDP: Linux"),
]

HERE = Path(__file__).resolve().parent

SERVER = """
import asyncio, importlib, sys
sys.path[:0] = [sys.argv[1]]
from interop_service import make_service
from rpcnet_runtime.server import Server
from rpcnet_runtime.tls import ServerTLS

async def main() -> None:
    server = Server("127.0.0.1", 0, tls=ServerTLS(sys.argv[2], sys.argv[3]))
    server.add_service(make_service(importlib.import_module("gen.interop")))
    await server.start()
    print(server.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.fixture
async def server_process(certs: DevCerts) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(HERE),
        str(certs.server_cert),
        str(certs.server_key),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        yield process, int(line)
    finally:
        if process.returncode is None:
            process.kill()
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(process.wait(), 10)


async def test_call_to_a_killed_server_fails_fast_and_the_channel_reconnects_lazily(
    server_process: tuple[asyncio.subprocess.Process, int], certs: DevCerts, interop: ModuleType
) -> None:
    process, port = server_process
    config = ClientConfig(idle_timeout=10.0, keepalive_interval=None, connect_timeout=2.0)
    async with connect(f"127.0.0.1:{port}", tls=ClientTLS(ca=certs.ca), config=config) as channel:
        client = interop.TestServiceClient(channel)
        assert await client.empty_call(interop.Empty()) == interop.Empty()
        assert channel.is_connected
        process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(process.wait(), 10) == -signal.SIGKILL

        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RpcError) as info:
            await asyncio.wait_for(client.empty_call(interop.Empty()), 5)
        assert info.value.status is Status.UNAVAILABLE
        assert loop.time() - started < 1.0  # the idle timeout is 10 s
        assert not channel.is_connected

        # The next call dials again (lazily): nothing listens, so it was never processed.
        with pytest.raises(RpcError) as info:
            await client.empty_call(interop.Empty())
        assert info.value.status is Status.UNAVAILABLE and info.value.not_processed
