"""The stacks by name, and the server process: start a server, report its port, obey commands.

A server process reads commands from its pipe: ``"profile-start"``, ``"profile-stop"`` (dumps
cProfile stats to ``<Setup.profile>/<stack>-server.prof``, then answers ``"ok"``) and ``"stop"``.
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from .common import Client, Setup
from .grpc_peers import GrpcAioClient, GrpcAioServer, GrpclibClient, GrpclibServer
from .raw_aioquic import RawClient, RawServer
from .rpcnet_peer import RpcnetClient, RpcnetServer

__all__ = ["STACKS", "Stack", "run_server", "stack_named", "stacks"]


class _Server(Protocol):
    async def start(self) -> int: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True)
class Stack:
    """One compared stack: its server and client classes and any datagram size override."""

    name: str
    server: Callable[[Setup], _Server]
    client: Callable[[Setup, int], Awaitable[Client]]
    datagram_size: int | None = None
    """Overrides `Setup.datagram_size` (the big-datagram QUIC variants)."""

    def setup(self, base: Setup) -> Setup:
        if self.datagram_size is None:
            return base
        return dataclasses.replace(base, datagram_size=self.datagram_size)


STACKS = {
    "rpcnet": Stack("rpcnet", RpcnetServer, RpcnetClient.open),
    "aioquic": Stack("aioquic", RawServer, RawClient.open),
    "grpc.aio": Stack("grpc.aio", GrpcAioServer, GrpcAioClient.open),
    "grpclib": Stack("grpclib", GrpclibServer, GrpclibClient.open),
}


def stacks(datagrams: Sequence[int] = ()) -> list[Stack]:
    """The four stacks, plus rpcnet and raw aioquic with N-byte datagrams for each N >= 1200."""
    chosen = list(STACKS.values())
    for datagram in datagrams:
        if datagram >= 1200:
            suffix = f"@{datagram}"
            chosen.append(Stack("rpcnet" + suffix, RpcnetServer, RpcnetClient.open, datagram))
            chosen.append(Stack("aioquic" + suffix, RawServer, RawClient.open, datagram))
    return chosen


def stack_named(name: str) -> Stack:
    """The stack called `name` (``rpcnet@N`` and ``aioquic@N`` for any N)."""
    size = name.partition("@")[2]
    found = {s.name: s for s in stacks([int(size)] if size else [])}.get(name)
    if found is None:
        raise ValueError(f"unknown stack {name!r}")
    return found


def run_server(name: str, setup: Setup, conn: Connection) -> None:
    """Process entry point: serve stack `name` on 127.0.0.1 until told to stop."""
    stack = stack_named(name)
    runner: Any = asyncio.run
    if setup.uvloop:
        import uvloop  # type: ignore[import-not-found, unused-ignore]

        runner = uvloop.run
    try:
        runner(_serve(stack, stack.setup(setup), conn))
    finally:
        conn.close()


async def _serve(stack: Stack, setup: Setup, conn: Connection) -> None:
    server = stack.server(setup)
    try:
        port = await server.start()
    except BaseException as exc:
        conn.send(f"error: {exc!r}")
        raise
    conn.send(port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    profiler: cProfile.Profile | None = None

    def command() -> None:
        nonlocal profiler
        try:
            what: Any = conn.recv()
        except EOFError:  # the bench process went away
            what = "stop"
        if what == "profile-start" and setup.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        elif what == "profile-stop":
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(f"{setup.profile}/{stack.name}-server.prof")
                profiler = None
            conn.send("ok")
        elif what == "stop":
            stop.set()

    loop.add_reader(conn.fileno(), command)
    try:
        await stop.wait()
    finally:
        loop.remove_reader(conn.fileno())
        await asyncio.wait_for(server.stop(), timeout=5.0)
