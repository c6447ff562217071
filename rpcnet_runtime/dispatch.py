"""Running one server-side call: decode, invoke the handler, map its outcome to a trailer.

`run_call` is the one place where a handler's exception becomes a status: `RpcError` keeps its
status, message, metadata and pushback; a `SchemaError` also travels with its type name and
fields; anything else is logged once with its traceback and answered INTERNAL with a generic
message. The call's deadline cancels the handler (DEADLINE_EXCEEDED); a caller's reset cancels
it silently (the stream is gone).

A unary call of an ``@idempotent`` method that carries a key goes through the server's
idempotency store (`_invoke_once`): the handler runs once per key and its outcome (a response, or
a failure that is not transient) is stored and sent again to repeats; a transient failure
(`_TRANSIENT`, pushback, not processed) abandons the key so that a retry runs the handler again.
Streaming calls are not deduplicated (their request is not known when the handler starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .codec import pack, unpack
from .context import CallContext, _current_call
from .descriptors import MethodDescriptor, MethodKind
from .errors import RpcError, SchemaError
from .framing import OK_TRAILER, Trailer
from .policies.dedupe import ClaimKind, IdempotencyStore, request_fingerprint
from .protocol import CallInbox, TooManyMessages, decode_message
from .status import Status

if TYPE_CHECKING:
    from .server import ServerProtocol

__all__ = ["Route", "ServerCall", "run_call", "scoped_key"]

_TRANSIENT = frozenset(
    {
        Status.UNAVAILABLE,
        Status.CANCELLED,
        Status.DEADLINE_EXCEEDED,
        Status.INTERNAL,
        Status.UNKNOWN,
        Status.RESOURCE_EXHAUSTED,
        Status.ABORTED,
    }
)
"""Outcomes an idempotency key is abandoned on (not stored), so that a retry runs again."""

logger = logging.getLogger("rpcnet.server")


@dataclass(frozen=True, slots=True)
class Route:
    method: MethodDescriptor[Any, Any]
    handler: Callable[..., Any] | None
    """The bound handler; None when the skeleton's method was not overridden."""
    path: str = field(init=False)
    """``method.path``, formatted once rather than per call."""
    single_request: bool = field(init=False)
    """The method takes one request message (it is not client-streaming)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", self.method.path)
        object.__setattr__(self, "single_request", not self.method.kind.client_streams)


class ServerCall:
    """A call being served: its stream, inbound messages, context and task.

    A single-message request that arrived whole (header, message and FIN at once, the usual
    unary call) has no inbox: its message waits in `request`.
    """

    __slots__ = (
        "cancel_status",
        "ctx",
        "inbox",
        "queued",
        "request",
        "stream_id",
        "task",
        "ticket",
    )

    def __init__(
        self,
        stream_id: int,
        inbox: CallInbox | None,
        ctx: CallContext,
        ticket: int = 0,
        queued: bool = False,
        request: bytes = b"",
    ) -> None:
        self.stream_id = stream_id
        self.inbox = inbox
        self.request = request
        """The whole request's one message, when `inbox` is None."""
        self.ctx = ctx
        self.ticket = ticket
        """The load shedder's ticket (0: no admission control)."""
        self.queued = queued
        """The call waits in the admission queue before it runs."""
        self.task: asyncio.Task[None] | None = None
        self.cancel_status: Status | None = None
        """Set by the server before cancelling the task itself (e.g. on stop)."""


async def _read_payload(call: ServerCall) -> bytes:
    if call.inbox is None:
        return call.request
    try:
        payloads = await call.inbox.wait_ended()
    except TooManyMessages:
        payloads = [b"", b""]
    if len(payloads) != 1:
        problem = "no request message" if not payloads else "more than one request message"
        raise RpcError(Status.INVALID_ARGUMENT, f"a unary request carries {problem}")
    payload: bytes = payloads[0]
    return payload


def _decode_request(method: MethodDescriptor[Any, Any], payload: bytes) -> Any:
    """The request message of `payload`; a bad one is the caller's INVALID_ARGUMENT."""
    return decode_message(method.request_type, payload, "request", Status.INVALID_ARGUMENT)


async def _read_one(call: ServerCall, method: MethodDescriptor[Any, Any]) -> Any:
    return _decode_request(method, await _read_payload(call))


class _StoredOutcome(Exception):
    """A repeated idempotency key whose stored outcome was a failure: send that trailer."""

    def __init__(self, trailer: Trailer) -> None:
        super().__init__(trailer.message)
        self.trailer = trailer


def scoped_key(ctx: CallContext, key: str) -> str:
    """The store's key: the method and, under mutual TLS, the peer identity scope the caller's
    key, so that two methods or two clients never share an outcome."""
    identity = ctx.peer_identity or ""
    # Lengths first: no choice of key can make two (method, identity, key) triples collide.
    return f"{len(ctx.method)}:{ctx.method}{len(identity)}:{identity}{key}"


def _encode_outcome(trailer: Trailer, wire: Any) -> bytes:
    return pack(
        [
            trailer.status.value,
            trailer.message,
            trailer.error_name,
            trailer.error_fields,
            dict(trailer.metadata),
            wire,
        ]
    )


def _replay(encoded: bytes, ctx: CallContext) -> Any:
    """The wire map of a stored success (its trailer metadata set on `ctx`); raises
    `_StoredOutcome` for a stored failure."""
    status, message, error_name, error_fields, metadata, wire = unpack(encoded)
    if status != Status.OK.value:
        trailer = Trailer(Status(status), message, error_name, error_fields, metadata=metadata)
        raise _StoredOutcome(trailer)
    ctx.response_metadata.update(metadata)
    return wire


async def _invoke_once(store: IdempotencyStore, call: ServerCall, route: Route, key: str) -> Any:
    """A unary call of an @idempotent method with a key: run the handler at most once per key
    (hedges aside) and answer repeats from the store."""
    method, handler = route.method, route.handler
    assert handler is not None
    ctx = call.ctx
    payload = await _read_payload(call)
    claim = await store.begin(
        scoped_key(ctx, key), request_fingerprint(method.path, payload), is_hedge=ctx.is_hedge
    )
    while claim.kind is ClaimKind.WAIT:
        claim = await store.wait(claim)
    if claim.kind is ClaimKind.STORED:
        assert claim.result is not None
        return _replay(claim.result, ctx)
    if claim.kind is not ClaimKind.RUN:
        raise claim.error()
    try:
        request = _decode_request(method, payload)
        wire = (await handler(request, ctx)).to_wire()
    except RpcError as exc:
        if exc.status in _TRANSIENT or exc.retry_after_seconds is not None or exc.not_processed:
            await store.abandon(claim)
        else:
            await store.complete(claim, _encode_outcome(error_trailer(exc, ctx), None))
        raise
    except BaseException:
        await store.abandon(claim)
        raise
    await store.complete(
        claim, _encode_outcome(Trailer(Status.OK, metadata=ctx.response_metadata), wire)
    )
    return wire


async def _requests(call: ServerCall, method: MethodDescriptor[Any, Any]) -> AsyncIterator[Any]:
    assert call.inbox is not None  # client-streaming calls always have one
    while (payload := await call.inbox.get()) is not None:
        yield _decode_request(method, payload)


async def _stream_out(protocol: ServerProtocol, call: ServerCall, responses: Any) -> None:
    async with contextlib.aclosing(responses) as stream:
        async for response in stream:
            if not await protocol.send_message(call.stream_id, response.to_wire()):
                return  # the call is gone (reset, connection closed)


async def _invoke(protocol: ServerProtocol, call: ServerCall, route: Route) -> Any:
    """Run the handler; returns the last message's wire map, or None for streamed replies."""
    method, handler = route.method, route.handler
    assert handler is not None
    kind = method.kind
    if kind is MethodKind.UNARY_UNARY:
        key = call.ctx.idempotency_key
        store = protocol.server.idempotency_store
        if key and store is not None and method.policy.idempotent:
            return await _invoke_once(store, call, route, key)
        if call.inbox is None:  # the request arrived whole: no waiting, two frames less
            request = _decode_request(method, call.request)
        else:
            request = await _read_one(call, method)
        response = await handler(request, call.ctx)
        return response.to_wire()
    if kind is MethodKind.UNARY_STREAM:
        await _stream_out(protocol, call, handler(await _read_one(call, method), call.ctx))
        return None
    if kind is MethodKind.STREAM_UNARY:
        response = await handler(_requests(call, method), call.ctx)
        return response.to_wire()
    await _stream_out(protocol, call, handler(_requests(call, method), call.ctx))
    return None


def error_trailer(exc: BaseException, ctx: CallContext) -> Trailer:
    """The trailer for a handler that raised `exc` (the single mapping point)."""
    metadata = dict(ctx.response_metadata)
    if isinstance(exc, RpcError):
        metadata.update(exc.metadata)
        name: str | None = None
        fields: Any = None
        if isinstance(exc, SchemaError):
            try:
                fields = exc.to_wire()
                name = type(exc).error_name
            except Exception:
                logger.exception("schema error %s does not encode", type(exc).__name__)
                return Trailer(Status.INTERNAL, "internal error", metadata=metadata)
        return Trailer(
            status=exc.status,
            message=exc.message,
            error_name=name,
            error_fields=fields,
            retry_after=exc.retry_after_seconds,
            not_processed=exc.not_processed,
            metadata=metadata,
        )
    logger.error("handler of %s failed", ctx.method, exc_info=exc)
    return Trailer(Status.INTERNAL, "internal error", metadata=metadata)


async def run_call(protocol: ServerProtocol, call: ServerCall, route: Route) -> None:
    """The body of a call's task."""
    ctx = call.ctx
    _current_call.set(ctx)
    timeout = None if ctx.deadline is None else asyncio.timeout_at(ctx.deadline)
    last: Any = None
    try:
        try:
            if timeout is None:
                if call.queued:
                    await _wait_turn(protocol, call)
                last = await _invoke(protocol, call, route)
            else:
                async with timeout:
                    if call.queued:
                        await _wait_turn(protocol, call)
                    last = await _invoke(protocol, call, route)
            metadata = ctx.response_metadata
            trailer = Trailer(Status.OK, metadata=metadata) if metadata else OK_TRAILER
        except _StoredOutcome as stored:
            trailer = stored.trailer
        except asyncio.CancelledError:
            if call.cancel_status is None:
                return  # the caller reset the stream, or the connection is gone
            trailer = Trailer(call.cancel_status, "server stopped before the call finished")
        except TimeoutError as exc:
            if timeout is not None and timeout.expired():
                ctx.mark_cancelled()
                if call.queued:  # it never left the admission queue: no handler ran
                    trailer = Trailer(
                        Status.DEADLINE_EXCEEDED, "deadline exceeded in queue", not_processed=True
                    )
                else:
                    trailer = Trailer(Status.DEADLINE_EXCEEDED, "deadline exceeded")
            else:
                trailer = error_trailer(exc, ctx)
        except Exception as exc:
            trailer = error_trailer(exc, ctx)
        if trailer.status is not Status.OK:
            last = None
        protocol.finish(call.stream_id, trailer, last)
    finally:
        # Cleanup here rather than a done callback: one less loop turn per call.
        server = protocol.server
        server._tasks.pop(call.task, None)  # type: ignore[arg-type]
        if call.ticket:
            server.free_slot(call)


async def _wait_turn(protocol: ServerProtocol, call: ServerCall) -> None:
    """Wait in the admission queue; a call cancelled there holds no slot any more."""
    gate = protocol.server.gate
    assert gate is not None
    try:
        await gate.wait(call.ticket)
    except BaseException:
        call.ticket = 0
        raise
    call.queued = False
