"""Two in-memory aioquic connections joined by a pump (no sockets), for sans-IO tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from aioquic.quic.connection import QuicConnection

from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.connection import ALPN, RpcConnection
from rpcnet_runtime.events import RpcEvent
from rpcnet_runtime.tls import ClientTLS, ServerTLS

CLIENT_ADDR = ("127.0.0.1", 40000)
SERVER_ADDR = ("127.0.0.1", 4433)


@dataclass
class Pair:
    """A client and a server RpcConnection, and the events each reported."""

    client: RpcConnection
    server: RpcConnection
    now: float = 0.0
    client_events: list[RpcEvent] = field(default_factory=list)
    server_events: list[RpcEvent] = field(default_factory=list)
    dropped: int = 0
    """Datagrams thrown away while `drop` is set."""
    drop: bool = False

    def _drain(self, rpc: RpcConnection, sink: list[RpcEvent]) -> None:
        event = rpc.quic.next_event()
        while event is not None:
            sink.extend(rpc.handle_event(event))
            event = rpc.quic.next_event()

    def step(self) -> int:
        """Let 1 ms pass (pacing), then move every pending datagram once in each direction;
        returns how many moved."""
        self.advance(0.001)
        moved = 0
        for src, dst, addr, sink in (
            (self.client, self.server, CLIENT_ADDR, self.server_events),
            (self.server, self.client, SERVER_ADDR, self.client_events),
        ):
            for data, _ in src.quic.datagrams_to_send(now=self.now):
                moved += 1
                if self.drop:
                    self.dropped += 1
                    continue
                dst.quic.receive_datagram(data, addr, now=self.now)
            self._drain(dst, sink)
        return moved

    def pump(self, max_rounds: int = 50) -> None:
        """Exchange datagrams until both sides are quiet; fails after `max_rounds`."""
        for _ in range(max_rounds):
            if self.step() == 0 and self.step() == 0:
                return
        raise AssertionError(f"still exchanging datagrams after {max_rounds} rounds")

    def advance(self, seconds: float) -> None:
        """Move time forward and fire both connections' timers."""
        self.now += seconds
        for rpc, sink in ((self.client, self.client_events), (self.server, self.server_events)):
            timer = rpc.quic.get_timer()
            if timer is not None and timer <= self.now:
                rpc.quic.handle_timer(now=self.now)
                self._drain(rpc, sink)

    def take_client(self) -> list[RpcEvent]:
        events, self.client_events = self.client_events, []
        return events

    def take_server(self) -> list[RpcEvent]:
        events, self.server_events = self.server_events, []
        return events


def make_pair(
    certs: DevCerts,
    *,
    max_frame_size: int = 4 * 1024 * 1024,
    receive_window: int = 256 * 1024,
    server_alpn: str = ALPN,
    client_alpn: str = ALPN,
    ready: bool = True,
) -> Pair:
    """A handshaken pair; the server is marked ready unless `ready` is False."""
    server_tls = ServerTLS(certs.server_cert, certs.server_key)
    client_tls = ClientTLS(ca=certs.ca)
    server_config = server_tls.quic_configuration(alpn_protocols=[server_alpn], idle_timeout=10)
    client_config = client_tls.quic_configuration(
        alpn_protocols=[client_alpn], idle_timeout=10, server_name="localhost"
    )
    for config in (server_config, client_config):
        config.max_stream_data = receive_window
    client_quic = QuicConnection(configuration=client_config)
    server_quic = QuicConnection(
        configuration=server_config,
        original_destination_connection_id=client_quic.original_destination_connection_id,
    )
    pair = Pair(
        client=RpcConnection(
            client_quic,
            is_client=True,
            max_frame_size=max_frame_size,
            receive_window=receive_window,
        ),
        server=RpcConnection(
            server_quic,
            is_client=False,
            max_frame_size=max_frame_size,
            receive_window=receive_window,
        ),
    )
    client_quic.connect(SERVER_ADDR, now=pair.now)
    pair.pump()
    if ready:
        pair.server_events.extend(pair.server.mark_ready())
    return pair
