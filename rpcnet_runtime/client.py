"""`connect()` and the one-server channel: calls of all four kinds over one QUIC connection.

The connection is opened by `await connect(...)` (or ``async with connect(...)``) and again,
lazily, by the next call after it died. `_attempt_unary` and its streaming siblings send one
attempt; the four `Channel` methods hand them to the channel's `PolicyExecutor`, which adds the
schema's deadlines, retries, hedging and idempotency keys, the endpoint's circuit breaker and the
retry throttle (`ChannelPolicy` holds the channel's defaults). A failure to reach the server is
`RpcError(UNAVAILABLE, not_processed=True)`, which is always safe to retry.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import AsyncIterable, AsyncIterator, Generator, Mapping
from typing import Any, Generic, TypeVar

from .channel import CallOptions
from .client_dial import dial, split_address
from .client_protocol import ClientProtocol, trailer_error
from .config import ClientConfig
from .descriptors import MethodDescriptor, RequestT, ResponseT
from .errors import RpcError
from .framing import RequestHeader, Trailer, encode_header, method_id
from .policies.channel_policy import ChannelPolicy
from .policies.counters import PolicyCounters
from .policies.executor import AttemptSpec
from .protocol import (
    CallInbox,
    TooManyMessages,
    decode_message,
)
from .status import Status
from .tls import ClientTLS

__all__ = ["ChannelPolicy", "ClientChannel", "connect"]

T = TypeVar("T")


class ClientChannel:
    """A `Channel` to one server. Await it (or use ``async with``) to connect."""

    def __init__(
        self,
        address: str,
        *,
        tls: ClientTLS,
        config: ClientConfig | None = None,
        policy: ChannelPolicy | None = None,
        rng: random.Random | None = None,
    ):
        self.address = address
        self.host, self.port = split_address(address)
        self.tls = tls
        self.config = config or ClientConfig()
        self.policy = policy or ChannelPolicy()
        self._executor = self.policy.executor(rng=rng)
        self._protocol: ClientProtocol | None = None
        self._dialing: asyncio.Future[ClientProtocol] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self.is_connected else "idle")
        return f"ClientChannel({self.address}, {state})"

    # -- connection management -------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, ClientChannel]:
        return self._open().__await__()

    async def _open(self) -> ClientChannel:
        await self._connection(None)
        return self

    async def __aenter__(self) -> ClientChannel:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self._protocol is not None:
            self._protocol.shutdown()
            self._protocol = None

    @property
    def is_connected(self) -> bool:
        """True while the channel holds a connection not known to be dead (read-only; the
        next call reconnects when it is False)."""
        return self._protocol is not None and not self._protocol.terminated

    async def _connection(self, deadline: float | None) -> ClientProtocol:
        """The live connection, dialling once for all the calls that need it now."""
        if self._closed:
            raise RpcError(Status.UNAVAILABLE, "the channel is closed", not_processed=True)
        protocol = self._protocol
        if protocol is not None and not protocol.terminated:
            return protocol
        dialing = self._dialing
        if dialing is None or dialing.done():
            dialing = self._dialing = asyncio.ensure_future(
                dial(self.address, self.host, self.port, self.tls, self.config)
            )
            dialing.add_done_callback(_retrieve)
        try:
            if deadline is None:
                protocol = await asyncio.shield(dialing)
            else:
                async with asyncio.timeout_at(deadline):
                    protocol = await asyncio.shield(dialing)
        except TimeoutError:
            raise RpcError(
                Status.DEADLINE_EXCEEDED, "deadline exceeded while connecting", not_processed=True
            ) from None
        if self._closed:
            protocol.shutdown()
            raise RpcError(Status.UNAVAILABLE, "the channel is closed", not_processed=True)
        self._protocol = protocol
        return protocol

    # -- one attempt ---------------------------------------------------------------------

    async def _start(
        self,
        method: MethodDescriptor[Any, Any],
        message: Any,
        spec: AttemptSpec,
    ) -> tuple[ClientProtocol, CallInbox]:
        """Open the call's stream, connecting first when needed."""
        protocol = self._protocol
        if protocol is None or protocol.terminated or self._closed:
            protocol = await self._connection(spec.deadline)
        return protocol, self._open_call(
            protocol,
            method,
            message,
            spec,
        )

    def _open_call(
        self,
        protocol: ClientProtocol,
        method: MethodDescriptor[Any, Any],
        message: Any,
        spec: AttemptSpec,
    ) -> CallInbox:
        """Open the call's stream; a unary request goes with its message and FIN."""
        if protocol.terminated:  # it died between connecting and this call
            why = protocol.termination
            raise RpcError(
                why.status if why else Status.UNAVAILABLE,
                why.message if why else "connection lost",
                not_processed=True,
            )
        timeout = None
        if spec.deadline is not None:
            timeout = spec.deadline - protocol.loop.time()
            if timeout <= 0:
                raise RpcError(Status.DEADLINE_EXCEEDED, "deadline exceeded", not_processed=True)
        if (
            timeout is None
            and spec.idempotency_key is None
            and spec.attempt_number == 1
            and not spec.is_hedge
            and not spec.metadata
        ):
            header: RequestHeader | bytes = _plain_header(method.path)
        else:
            header = RequestHeader(
                path=method.path,
                timeout=timeout,
                idempotency_key=spec.idempotency_key,
                attempt=spec.attempt_number,
                is_hedge=spec.is_hedge,
                metadata=spec.metadata or {},
            )
        if message is None:
            stream_id = protocol.core.send_request(header)
        else:
            stream_id = protocol.core.send_request(header, message, end_stream=True)
        inbox = CallInbox(protocol, stream_id, single=not method.server_streams)
        protocol.calls[stream_id] = inbox
        protocol.call_written()
        return inbox

    async def _next(
        self, protocol: ClientProtocol, inbox: CallInbox, deadline: float | None
    ) -> bytes | None:
        """The next response message, or None after an OK trailer; raises the call's error."""
        try:
            if deadline is None:
                payload = await inbox.get()
            else:
                async with asyncio.timeout_at(deadline):
                    payload = await inbox.get()
        except TimeoutError:
            protocol.abandon(inbox.stream_id, Status.DEADLINE_EXCEEDED)
            raise RpcError(Status.DEADLINE_EXCEEDED, "deadline exceeded") from None
        except asyncio.CancelledError:
            protocol.abandon(inbox.stream_id)
            raise
        return payload

    def _ended(self, method: MethodDescriptor[Any, Any], inbox: CallInbox) -> Trailer:
        trailer = inbox.trailer
        assert trailer is not None
        if trailer.status is not Status.OK:
            raise trailer_error(method, trailer)
        return trailer

    async def _unary_reply(
        self,
        method: MethodDescriptor[Any, ResponseT],
        protocol: ClientProtocol,
        inbox: CallInbox,
        deadline: float | None,
    ) -> tuple[ResponseT, Mapping[str, str]]:
        try:
            if not inbox.ended:
                if deadline is None:
                    await inbox.end_waiter()
                else:
                    async with asyncio.timeout_at(deadline):
                        await inbox.end_waiter()
            payloads = inbox.take_all()
        except TimeoutError:
            protocol.abandon(inbox.stream_id, Status.DEADLINE_EXCEEDED)
            raise RpcError(Status.DEADLINE_EXCEEDED, "deadline exceeded") from None
        except asyncio.CancelledError:
            protocol.abandon(inbox.stream_id)
            raise
        except TooManyMessages:
            protocol.abandon(inbox.stream_id, Status.INTERNAL)
            raise RpcError(Status.INTERNAL, "the server sent more than one response") from None
        trailer = self._ended(method, inbox)
        if len(payloads) != 1:
            raise RpcError(
                Status.INTERNAL, f"the server sent {len(payloads)} response messages, not 1"
            )
        response = decode_message(method.response_type, payloads[0], "response", Status.INTERNAL)
        return response, trailer.metadata

    async def _attempt_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT,
        spec: AttemptSpec,
    ) -> tuple[ResponseT, Mapping[str, str]]:
        """One unary attempt; returns the response and the trailer's metadata."""
        protocol = self._protocol
        if protocol is None or protocol.terminated or self._closed:
            protocol = await self._connection(spec.deadline)
        inbox = self._open_call(
            protocol,
            method,
            request.to_wire(),
            spec,
        )
        return await self._unary_reply(method, protocol, inbox, spec.deadline)

    async def _pump(
        self,
        protocol: ClientProtocol,
        inbox: CallInbox,
        requests: AsyncIterable[Any],
    ) -> None:
        """Send the caller's request stream, then FIN; stops when the call is over."""
        stream_id = inbox.stream_id
        try:
            async for request in requests:
                if not await protocol.send_message(stream_id, request.to_wire()):
                    return
            protocol.core.end_input(stream_id)
            protocol.transmit_soon()
        except Exception as exc:  # the caller's own iterator failed: the call fails with it
            protocol.abandon(stream_id)
            inbox.fail(exc)

    async def _attempt_stream_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        requests: AsyncIterable[RequestT],
        spec: AttemptSpec,
    ) -> tuple[ResponseT, Mapping[str, str]]:
        protocol, inbox = await self._start(
            method,
            None,
            spec,
        )
        pump = protocol.loop.create_task(self._pump(protocol, inbox, requests))
        try:
            return await self._unary_reply(method, protocol, inbox, spec.deadline)
        finally:
            pump.cancel()

    async def _attempt_stream(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT | None,
        requests: AsyncIterable[RequestT] | None,
        spec: AttemptSpec,
    ) -> AsyncIterator[ResponseT]:
        """One server- or bidirectional-streaming attempt, as an async generator."""
        protocol, inbox = await self._start(
            method,
            None if request is None else request.to_wire(),
            spec,
        )
        pump = None
        if requests is not None:
            pump = protocol.loop.create_task(self._pump(protocol, inbox, requests))
        try:
            while (payload := await self._next(protocol, inbox, spec.deadline)) is not None:
                yield decode_message(method.response_type, payload, "response", Status.INTERNAL)
            self._ended(method, inbox)
        finally:
            if pump is not None:
                pump.cancel()
            protocol.abandon(inbox.stream_id)

    # -- the Channel protocol: every call goes through the policy executor -------------------

    @property
    def counters(self) -> PolicyCounters:
        """What the policies did on this channel: ``channel.counters.snapshot()``."""
        return self._executor.counters

    async def unary_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT,
        options: CallOptions,
    ) -> ResponseT:
        # A partial, not a closure: the executor's call of it reaches `_attempt_unary` in C.
        attempt = functools.partial(self._attempt_unary, method, request)
        response, _ = await self._executor.unary(
            method, request, options, attempt, endpoint=self.address
        )
        return response

    def unary_stream(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        request: RequestT,
        options: CallOptions,
    ) -> AsyncIterator[ResponseT]:
        def attempt(spec: AttemptSpec) -> AsyncIterator[ResponseT]:
            return self._attempt_stream(
                method,
                request,
                None,
                spec,
            )

        return self._executor.server_stream(
            method, request, options, attempt, endpoint=self.address
        )

    async def stream_unary(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        requests: AsyncIterable[RequestT],
        options: CallOptions,
    ) -> ResponseT:
        source = _Untouched(requests)

        async def attempt(spec: AttemptSpec) -> ResponseT:
            response, _ = await self._attempt_stream_unary(
                method,
                source,
                spec,
            )
            return response

        return await self._executor.unary(
            method, None, options, attempt, endpoint=self.address, replayable=source.untouched
        )

    def stream_stream(
        self,
        method: MethodDescriptor[RequestT, ResponseT],
        requests: AsyncIterable[RequestT],
        options: CallOptions,
    ) -> AsyncIterator[ResponseT]:
        source = _Untouched(requests)

        def attempt(spec: AttemptSpec) -> AsyncIterator[ResponseT]:
            return self._attempt_stream(
                method,
                None,
                source,
                spec,
            )

        return self._executor.server_stream(
            method, None, options, attempt, endpoint=self.address, replayable=source.untouched
        )


class _Untouched(Generic[T]):
    """The caller's request stream, remembering whether anything was asked of it yet.

    A streamed request is consumed as it is sent, so a client-streaming or bidirectional call
    is tried again only while its request stream is untouched (the connection or the breaker
    failed before the first request message was taken).
    """

    __slots__ = ("_iterator", "_source", "touched")

    def __init__(self, source: AsyncIterable[T]) -> None:
        self._source = source
        self._iterator: AsyncIterator[T] | None = None
        self.touched = False

    def untouched(self) -> bool:
        return not self.touched

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        self.touched = True
        if self._iterator is None:
            self._iterator = aiter(self._source)
        return await anext(self._iterator)


@functools.lru_cache(maxsize=1024)
def _plain_header(path: str) -> bytes:
    """The HEADER frame of a first attempt without deadline, key or metadata: one per method,
    encoded once, so the usual call builds and encodes none."""
    return encode_header(RequestHeader(path=path, method_id=method_id(path)))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a dial's failure as seen even when every caller gave up waiting for it."""
    if not future.cancelled():
        future.exception()


def connect(
    address: str,
    *,
    tls: ClientTLS,
    config: ClientConfig | None = None,
    policy: ChannelPolicy | None = None,
) -> ClientChannel:
    """A channel to the server at ``host:port``.

    ``channel = await connect(...)`` connects at once; ``async with connect(...) as channel``
    also closes it at the end. After the connection dies, the next call reconnects. `policy`
    holds the channel's defaults for the schema's call policies (`ChannelPolicy`).
    """
    return ClientChannel(address, tls=tls, config=config, policy=policy)
