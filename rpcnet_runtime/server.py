"""`Server`: serves generated service skeletons over QUIC.

Each connection gets a `ServerProtocol`; each call a task running `dispatch.run_call`. Load
shedding (`max_concurrent_calls`) refuses calls before a task exists; the idempotency store
answers repeated keys of ``@idempotent`` methods (see `dispatch`). Nothing is
dispatched on a connection before its peer passed `ServerTLS.authenticate_client`; a peer that
fails it has its connection closed with `CLOSE_UNAUTHENTICATED` and the reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic.connection import QuicConnection

from .clock import AsyncioClock
from .config import ServerConfig
from .connection import ALPN, CLOSE_NO_ERROR, CLOSE_UNAUTHENTICATED
from .context import CallContext
from .descriptors import MethodDescriptor, ServiceDescriptor
from .dispatch import Route, ServerCall, run_call
from .events import (
    CallFailed,
    CallReset,
    ConnectionReady,
    ConnectionTerminated,
    InputEnded,
    MessageReceived,
    RequestReceived,
    RpcEvent,
)
from .framing import RequestHeader, Trailer, method_id
from .policies.counters import PolicyCounters
from .policies.dedupe import IdempotencyStore, InMemoryIdempotencyStore
from .policies.shedding import AdmissionDecision, AdmissionGate, LoadShedder
from .protocol import CallInbox, RpcProtocol, is_loopback, tune_socket
from .status import Status
from .tls import PeerAuthenticationError, ServerTLS

__all__ = ["Server"]

logger = logging.getLogger("rpcnet.server")


class ServerProtocol(RpcProtocol):
    """One client connection of a `Server`."""

    def __init__(self, quic: QuicConnection, *, server: Server, **kwargs: Any) -> None:
        super().__init__(quic, is_client=False, config=server.config, **kwargs)
        self.server = server
        self.calls: dict[int, ServerCall] = {}
        self.peer = ""
        self.peer_identity: str | None = None
        self._header_sweep: asyncio.TimerHandle | None = None
        self._schedule_header_sweep()

    def _schedule_header_sweep(self) -> None:
        timeout = self.server.config.header_timeout
        if timeout is not None and not self.terminated:
            self._header_sweep = self.loop.call_later(timeout, self._sweep_headers)

    def _sweep_headers(self) -> None:
        """Fail calls whose request header is overdue (see `RpcConnection.expire_headerless`)."""
        self._header_sweep = None
        if self.core.terminated or self not in self.server._protocols:
            return  # the connection is over, or the server stopped
        events = self.core.expire_headerless()
        for event in events:
            self.rpc_event_received(event)
        if events:
            self.transmit()
        self._schedule_header_sweep()

    def rpc_event_received(self, event: RpcEvent) -> None:
        if isinstance(event, RequestReceived):
            if self.sending_stopped(event.stream_id):
                # The caller gave up before its request arrived (its STOP_SENDING came first,
                # so no reset was reported for the call): run nothing, answer nothing.
                self.core.cancel(event.stream_id)
                return
            self.server._dispatch(self, event)
        elif isinstance(event, MessageReceived):
            call = self.calls.get(event.stream_id)
            if call is not None and call.inbox is not None:
                call.inbox.push(event.payload, event.size)
        elif isinstance(event, InputEnded):
            call = self.calls.get(event.stream_id)
            if call is not None and call.inbox is not None:
                call.inbox.finish()
        elif isinstance(event, CallReset | CallFailed):
            call = self.calls.pop(event.stream_id, None)
            if call is not None:
                if call.inbox is not None:
                    call.inbox.fail(asyncio.CancelledError())
                self._cancel(call)
        elif isinstance(event, ConnectionReady):
            self._authenticate()
        elif isinstance(event, ConnectionTerminated):
            self.connection_terminated()
            if self._header_sweep is not None:
                self._header_sweep.cancel()
                self._header_sweep = None
            for call in self.calls.values():
                self._cancel(call)
            self.calls.clear()
            self.server._protocols.discard(self)

    def _cancel(self, call: ServerCall) -> None:
        call.ctx.mark_cancelled()
        if call.task is not None:
            call.task.cancel()
            # A task cancelled before its first step never runs run_call's cleanup.
            self.server._tasks.pop(call.task, None)
        if call.ticket:
            self.server.free_slot(call)

    def _authenticate(self) -> None:
        try:
            self.peer_identity = self.server.tls.authenticate_client(self._quic)
        except PeerAuthenticationError as exc:
            logger.warning("refused a client: %s", exc)
            self.core.close(CLOSE_UNAUTHENTICATED, f"client authentication failed: {exc}")
            return
        except Exception:  # fail closed: a bug in the check must not let the client in
            logger.exception("client authentication raised")
            self.core.close(CLOSE_UNAUTHENTICATED, "client authentication failed")
            return
        address = self._quic.get_peer_address()
        if address is not None:
            self.peer = f"{address[0]}:{address[1]}"
        self.start_keepalive(self.server.config.keepalive_interval)
        for event in self.core.mark_ready():
            self.rpc_event_received(event)

    def finish(self, stream_id: int, trailer: Trailer, message: Any = None) -> None:
        """Send the call's last message (if any) and trailer, then forget the call.

        A call whose caller stopped it (its stream was reset) is dropped quietly.
        """
        self.calls.pop(stream_id, None)
        if self.sending_stopped(stream_id):
            self.core.cancel(stream_id)
            return
        if message is None:
            self.core.send_trailer(stream_id, trailer)
        else:
            self.core.send_trailer(stream_id, trailer, message)
        self.call_written()


class Server:
    """Serves the services added with `add_service` on ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ServerTLS,
        config: ServerConfig | None = None,
        idempotency_store: IdempotencyStore | None = None,
        dedupe: bool = True,
        max_concurrent_calls: int | None = None,
        max_queued_calls: int = 0,
    ) -> None:
        """
        :param idempotency_store: where outcomes of ``@idempotent`` calls are kept by key
            (default, with `dedupe`: a bounded `InMemoryIdempotencyStore`, 10,000 entries,
            64 MiB, 5 minutes). A repeated key gets the stored outcome; the handler runs once.
        :param dedupe: False: no store (every attempt runs the handler).
        :param max_concurrent_calls: load shedding: calls running at once on this server; None:
            no limit. Calls beyond it and `max_queued_calls` are refused before dispatch with
            RESOURCE_EXHAUSTED, not processed, with a retry-after.
        :param max_queued_calls: calls that may wait for a slot.
        """
        self.host = host
        self._requested_port = port
        self.tls = tls
        self.config = config or ServerConfig()
        self._routes: dict[int, Route] = {}
        """Keyed by `framing.method_id` of the path."""
        self._services: set[str] = set()
        self._protocols: set[ServerProtocol] = set()
        self._tasks: dict[asyncio.Task[None], ServerCall] = {}
        self._quic_server: QuicServer | None = None
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        clock = AsyncioClock()
        store_counters = getattr(idempotency_store, "counters", None)
        self.counters = (
            store_counters if isinstance(store_counters, PolicyCounters) else PolicyCounters()
        )
        """What the server's policies did: ``server.counters.snapshot()``."""
        if idempotency_store is None and dedupe:
            idempotency_store = InMemoryIdempotencyStore(clock=clock, counters=self.counters)
        self.idempotency_store = idempotency_store if dedupe else None
        self.gate: AdmissionGate | None = None
        if max_concurrent_calls is not None:
            shedder = LoadShedder(max_concurrent_calls, max_queued_calls)
            self.gate = AdmissionGate(shedder, clock, self.counters)

    def __repr__(self) -> str:
        state = "draining" if self._draining else ("serving" if self._quic_server else "stopped")
        return (
            f"Server({self.host}:{self.port if self._quic_server else self._requested_port}, "
            f"{state}, services={sorted(self._services)}, calls={len(self._tasks)})"
        )

    def add_service(self, instance: Any) -> None:
        """Serve `instance`, an object of a subclass of a generated ``<Service>Base``."""
        descriptor = getattr(type(instance), "__rpc_service__", None)
        if not isinstance(descriptor, ServiceDescriptor):
            raise TypeError(f"{type(instance).__name__} is not a generated service skeleton")
        if descriptor.name in self._services:
            raise ValueError(f"service {descriptor.name} was already added")
        base = _skeleton_class(type(instance))
        routes = {
            method_id(m.path): Route(m, _handler(instance, base, m)) for m in descriptor.methods
        }
        for mid, route in routes.items():
            other = self._routes.get(mid)
            if other is not None:
                raise ValueError(
                    f"{route.method.path} and {other.method.path} have the same method id"
                )
        if len(routes) != len(descriptor.methods):
            raise ValueError(f"two methods of {descriptor.name} have the same method id")
        self._routes.update(routes)
        self._services.add(descriptor.name)

    @property
    def port(self) -> int:
        """The bound UDP port (after `start`)."""
        if self._quic_server is None or self._quic_server._transport is None:
            raise RuntimeError("the server is not started")
        port: int = self._quic_server._transport.get_extra_info("sockname")[1]
        return port

    @property
    def services(self) -> frozenset[str]:
        return frozenset(self._services)

    async def start(self) -> None:
        if self._quic_server is not None:
            raise RuntimeError("the server is already started")
        self._loop = asyncio.get_running_loop()
        self._draining = False
        configuration = self.tls.quic_configuration(
            alpn_protocols=[ALPN], idle_timeout=self.config.idle_timeout
        )
        configuration.max_stream_data = self.config.receive_window
        configuration.max_datagram_size = self.config.datagram_size(is_loopback(self.host))
        self._quic_server = await serve(
            self.host,
            self._requested_port,
            configuration=configuration,
            create_protocol=self._create_protocol,
        )
        tune_socket(self._quic_server._transport, self.config.socket_buffer_size)

    def _create_protocol(self, quic: QuicConnection, **kwargs: Any) -> ServerProtocol:
        self.tls.prepare_connection(quic)
        streams = quic._local_max_streams_bidi
        streams.value = streams.sent = self.config.max_concurrent_streams
        protocol = ServerProtocol(quic, server=self, **kwargs)
        self._protocols.add(protocol)
        return protocol

    async def stop(self, grace: float = 5.0) -> None:
        """Refuse new calls (UNAVAILABLE, not processed), let calls in flight finish for up to
        `grace` seconds, end the rest with UNAVAILABLE, then close every connection."""
        if self._quic_server is None:
            return
        self._draining = True
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        leftover = list(self._tasks.items())
        for task, call in leftover:
            call.cancel_status = Status.UNAVAILABLE
            task.cancel()
        if leftover:
            await asyncio.wait([task for task, _ in leftover], timeout=1.0)
            for task, _ in leftover:
                self._tasks.pop(task, None)
        for protocol in list(self._protocols):
            protocol.core.close(CLOSE_NO_ERROR, "server stopped")
            protocol.transmit()
        self._protocols.clear()
        transport = self._quic_server._transport
        self._quic_server.close()
        self._quic_server = None
        # The socket closes on the next loop turn; return once the port is free again.
        sock = transport.get_extra_info("socket") if transport is not None else None
        for _ in range(10):
            if sock is None or sock.fileno() == -1:
                break
            await asyncio.sleep(0)

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, protocol: ServerProtocol, event: RequestReceived) -> None:
        stream_id, header = event.stream_id, event.header
        if self._draining:
            protocol.finish(
                stream_id,
                Trailer(Status.UNAVAILABLE, "server is shutting down", not_processed=True),
            )
            return
        assert header.method_id is not None  # decode_header always sets it
        route = self._routes.get(header.method_id)
        if route is None or route.handler is None:
            problem = self._unimplemented(header, route)
            protocol.finish(stream_id, Trailer(Status.UNIMPLEMENTED, problem))
            return
        loop = protocol.loop
        deadline = None if header.timeout is None else loop.time() + header.timeout
        ctx = CallContext(
            method=route.path,
            clock=loop.time,
            deadline=deadline,
            metadata=header.metadata,
            idempotency_key=header.idempotency_key,
            attempt=header.attempt,
            is_hedge=header.is_hedge,
            peer=protocol.peer,
            peer_identity=protocol.peer_identity,
        )
        if header.timeout is not None and header.timeout <= 0:
            protocol.finish(stream_id, Trailer(Status.DEADLINE_EXCEEDED, "deadline exceeded"))
            return
        ticket = 0
        queued = False
        if self.gate is not None:
            admission = self.gate.enter()
            if admission.decision is AdmissionDecision.SHED:
                protocol.finish(
                    stream_id,
                    Trailer(
                        Status.RESOURCE_EXHAUSTED,
                        "server overloaded; call shed before dispatch",
                        retry_after=admission.retry_after,
                        not_processed=True,
                    ),
                )
                return
            ticket = admission.ticket
            queued = admission.decision is AdmissionDecision.QUEUE
        message = event.message
        if message is not None and event.ended and route.single_request:
            call = ServerCall(stream_id, None, ctx, ticket, queued, message)
        else:
            inbox = CallInbox(protocol, stream_id, single=route.single_request)
            if message is not None:
                inbox.push(message, len(message) + 5)
            if event.ended:
                inbox.finish()
            call = ServerCall(stream_id, inbox, ctx, ticket, queued)
        protocol.calls[stream_id] = call
        task = loop.create_task(run_call(protocol, call, route))
        call.task = task
        self._tasks[task] = call  # run_call removes it (no done callback: one less loop turn)

    def free_slot(self, call: ServerCall) -> None:
        """Give back the call's load-shedding slot (or queue place); harmless twice."""
        if self.gate is not None and call.ticket:
            self.gate.drop(call.ticket)
        call.ticket = 0

    def _unimplemented(self, header: RequestHeader, route: Route | None) -> str:
        """Why a call of `header`'s method (routed to `route`, if any) has no handler here."""
        if route is not None:
            return f"method {route.method.path} is not implemented"
        if not header.path:
            return f"unknown method (id 0x{header.method_id:016x})"
        service, _, name = header.path.rpartition("/")
        if service in self._services:
            return f"unknown method {name} of service {service}"
        return f"unknown service {service or header.path}"


def _skeleton_class(cls: type) -> type:
    """The generated base class: the last class in the MRO that declares the descriptor."""
    for klass in reversed(cls.__mro__):
        if "__rpc_service__" in vars(klass):
            return klass
    return cls


def _handler(
    instance: Any, base: type, method: MethodDescriptor[Any, Any]
) -> Callable[..., Any] | None:
    """The bound handler, or None when the subclass did not override the skeleton's method."""
    function = getattr(type(instance), method.py_name, None)
    if function is None or function is vars(base).get(method.py_name):
        return None
    bound: Callable[..., Any] = getattr(instance, method.py_name)
    return bound
