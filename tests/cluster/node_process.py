"""A cluster node in its own process, and the controller tests and benchmarks use to run it.

Run as a script, it starts a `Server` on 127.0.0.1 with the dev certificates (mutual TLS),
joins the cluster through ``--seeds`` and puts `UdpRelay`s on every path in and out:

- an *ingress* relay in front of its server, whose address it advertises, so every datagram of
  every connection to this node passes it;
- one *egress* relay per peer it dials, so its own connections to others pass relays it owns.

Cutting all of them isolates the node completely; a drop rate on the ingress relay alone gives
every link (each connection passes exactly one ingress relay) that loss rate.

Protocol: JSON lines. Stdout: ``{"ready": id, "address": ...}``, then one line per event
(``{"event": "NodeFailed", "node": id, "t": monotonic}``, ``PartitionDetected`` with
``minority``/``majority``) and answers to commands. Stdin commands: ``{"cmd": "cut"}``,
``{"cmd": "heal"}``, ``{"cmd": "loss", "drop": 0.1}``, ``{"cmd": "members"}``,
``{"cmd": "leave"}``. Timestamps are ``time.monotonic()``, comparable across processes.

`NodeProcess` (imported by tests and ``bench/bench_cluster.py``) starts and controls one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]

Event = dict[str, Any]


# -- the node (child process) ------------------------------------------------------------------


def _event_line(event: object) -> Event:
    from rpcnet_runtime.cluster import PartitionDetected

    line: Event = {"event": type(event).__name__, "t": time.monotonic()}
    node = getattr(event, "node", None)
    if node is not None:
        line["node"] = node.id
        line["address"] = node.address
    if isinstance(event, PartitionDetected):
        line["minority"] = sorted(event.minority)
        line["majority"] = sorted(event.majority)
    count = getattr(event, "count", None)
    if count is not None:
        line["count"] = count
    return line


async def _run_node(args: argparse.Namespace) -> None:
    from rpcnet_runtime.client import connect
    from rpcnet_runtime.cluster import ClusterConfig, Membership
    from rpcnet_runtime.config import ClientConfig
    from rpcnet_runtime.server import Server
    from rpcnet_runtime.tls import ClientTLS, ServerTLS
    from rpcnet_runtime.udp_relay import UdpRelay

    certs = Path(args.certs)
    server = Server(
        "127.0.0.1",
        0,
        tls=ServerTLS(
            str(certs / "server.pem"), str(certs / "server.key"), client_ca=str(certs / "ca.pem")
        ),
    )
    await server.start()
    ingress = UdpRelay(f"127.0.0.1:{server.port}")
    ingress.start()
    egress: dict[str, UdpRelay] = {}
    relays: Callable[[], list[UdpRelay]] = lambda: [ingress, *egress.values()]  # noqa: E731

    tls = ClientTLS(
        ca=str(certs / "ca.pem"), cert=str(certs / "client.pem"), key=str(certs / "client.key")
    )
    preset = ClusterConfig.local if args.preset == "local" else ClusterConfig.lan
    config = preset(seeds=args.seeds, tags={"name": args.name}, tls=tls)
    client_config = ClientConfig(connect_timeout=max(0.5, 2.5 * config.probe_interval))
    cut = False

    def channel_factory(address: str) -> Any:
        relay = egress.get(address)
        if relay is None:
            relay = egress[address] = UdpRelay(address)
            relay.start()
            if cut:
                relay.cut()
        return connect(relay.address, tls=tls, config=client_config)

    membership = await Membership.join(
        server,
        config,
        node_id=args.name,
        advertise_address=ingress.address,
        channel_factory=channel_factory,
    )
    out = sys.stdout

    def emit(line: Event) -> None:
        out.write(json.dumps(line) + "\n")
        out.flush()

    emit({"ready": membership.id, "address": membership.address, "pid": os.getpid()})
    events = membership.subscribe()

    async def pump_events() -> None:
        async for event in events:
            emit(_event_line(event))

    pump = asyncio.create_task(pump_events())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            raw = await reader.readline()
            if not raw:
                break
            command = json.loads(raw)
            name = command.get("cmd")
            if name == "cut":
                cut = True
                for relay in relays():
                    relay.cut()
            elif name == "heal":
                cut = False
                for relay in relays():
                    relay.heal()
            elif name == "loss":
                ingress.set("both", drop=float(command["drop"]))
            elif name == "members":
                members = [
                    {"id": m.id, "address": m.address, "state": m.state.value}
                    for m in membership.members()
                ]
                emit(
                    {
                        "members": members,
                        "stable": sorted(membership.node.stable_members),
                        "swim": dataclasses.asdict(membership.counters),
                        "gossip": dataclasses.asdict(membership.sender.counters),
                    }
                )
            elif name == "leave":
                await membership.leave()
                emit({"left": membership.id})
                break
    finally:
        pump.cancel()
        await membership.close()
        for relay in relays():
            relay.close()
        await server.stop(grace=0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certs", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--seeds", nargs="*", default=[])
    parser.add_argument("--preset", choices=["lan", "local"], default="lan")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if os.environ.get("RPCNET_NODE_LOG"):
        logging.basicConfig(level=os.environ["RPCNET_NODE_LOG"].upper(), stream=sys.stderr)
    else:  # aioquic warns about every handshake packet lost to a cut relay
        logging.getLogger("quic").setLevel(logging.ERROR)
    asyncio.run(_run_node(args))


# -- the controller (test process) -------------------------------------------------------------


class NodeProcess:
    """One node process: start it, read its events, send it commands, kill or pause it."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.address = ""
        self.lines: list[Event] = []
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        name: str,
        certs: str,
        seeds: Sequence[str] = (),
        *,
        preset: str = "lan",
        ready_timeout: float = 20.0,
    ) -> NodeProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE),
            "--certs",
            certs,
            "--name",
            name,
            "--preset",
            preset,
            "--seeds",
            *seeds,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        node = cls(name, proc)
        node._reader = asyncio.create_task(node._read())
        ready = await node.wait_line(lambda line: "ready" in line, ready_timeout)
        node.address = ready["address"]
        return node

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                break
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(raw))
                self._changed.set()
        self._changed.set()

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def events(self, kind: str, node: str | None = None) -> list[Event]:
        return [
            e
            for e in self.lines
            if e.get("event") == kind and (node is None or e.get("node") == node)
        ]

    async def wait_line(
        self, match: Callable[[Event], bool], timeout: float, since: int = 0
    ) -> Event:
        """The first line from index `since` (read or arriving within `timeout`) that matches."""
        async with asyncio.timeout(timeout):
            seen = since
            while True:
                for line in self.lines[seen:]:
                    if match(line):
                        return line
                seen = len(self.lines)
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"{self.name} exited before the expected line")
                self._changed.clear()
                await self._changed.wait()

    async def wait_event(
        self, kind: str, node: str | None, timeout: float, since: int = 0
    ) -> Event:
        def match(line: Event) -> bool:
            return line.get("event") == kind and (node is None or line.get("node") == node)

        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines[since:]:
                    if match(line):
                        return line
                since = len(self.lines)
                self._changed.clear()
                await self._changed.wait()

    def command(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())

    async def members(self, timeout: float = 5.0) -> list[Event]:
        mark = len(self.lines)
        self.command("members")
        line = await self.wait_line(lambda e: "members" in e, timeout, since=mark)
        members: list[Event] = line["members"]
        return members

    async def stable_members(self, timeout: float = 5.0) -> set[str]:
        """The ids in this node's partition detector's last stable membership."""
        mark = len(self.lines)
        self.command("members")
        line = await self.wait_line(lambda e: "stable" in e, timeout, since=mark)
        return set(line["stable"])

    def signal(self, sig: int) -> float:
        """Send `sig`; returns the monotonic time just before it was sent."""
        t = time.monotonic()
        self.proc.send_signal(sig)
        return t

    async def stop(self, timeout: float = 5.0) -> None:
        """Kill the process (SIGCONT first in case it is paused) and reap it."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def start_cluster(
    certs: str, n: int, *, preset: str = "lan", prefix: str = "n", timeout: float = 30.0
) -> list[NodeProcess]:
    """Start `n` node processes (the first is the seed) and wait until all see all alive."""
    first = await NodeProcess.start(f"{prefix}0", certs, preset=preset)
    rest = await asyncio.gather(
        *(
            NodeProcess.start(f"{prefix}{i}", certs, [first.address], preset=preset)
            for i in range(1, n)
        )
    )
    nodes = [first, *rest]
    await wait_full_membership(nodes, timeout)
    return nodes


async def wait_full_membership(nodes: Sequence[NodeProcess], timeout: float) -> None:
    """Wait until every node has a NodeJoined for every other node and no later failure."""
    names = {n.name for n in nodes}

    def complete(node: NodeProcess) -> bool:
        state: dict[str, str] = {}
        for line in node.lines:
            if line.get("event") in ("NodeJoined", "NodeRecovered"):
                state[line["node"]] = "alive"
            elif line.get("event") in ("NodeFailed", "NodeLeft"):
                state[line["node"]] = "gone"
        return all(state.get(other) == "alive" for other in names - {node.name})

    async with asyncio.timeout(timeout):
        while True:
            for n in nodes:
                n._changed.clear()
            if all(complete(n) for n in nodes):
                return
            waits = [asyncio.create_task(n._changed.wait()) for n in nodes]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


if __name__ == "__main__":
    main()
