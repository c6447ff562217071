"""Running one server-side call: decode, invoke the handler, map its outcome to a trailer.

`run_call` is the one place where a handler's exception becomes a status: `RpcError` keeps its
status, message, metadata and pushback; a `SchemaError` also travels with its type name and
fields; anything else is logged once with its traceback and answered INTERNAL with a generic
message. The call's deadline cancels the handler (DEADLINE_EXCEEDED); a caller's reset cancels
it silently (the stream is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .context import CallContext, _current_call
from .descriptors import MethodDescriptor, MethodKind
from .errors import RpcError, SchemaError
from .framing import Trailer
from .protocol import CallInbox, TooManyMessages, decode_message
from .status import Status

if TYPE_CHECKING:
    from .server import ServerProtocol

__all__ = ["Route", "ServerCall", "run_call"]

logger = logging.getLogger("rpcnet.server")


@dataclass(frozen=True, slots=True)
class Route:
    method: MethodDescriptor[Any, Any]
    handler: Callable[..., Any] | None
    """The bound handler; None when the skeleton's method was not overridden."""


class ServerCall:
    """A call being served: its stream, inbound messages, context and task."""

    __slots__ = ("cancel_status", "ctx", "inbox", "stream_id", "task")

    def __init__(self, stream_id: int, inbox: CallInbox, ctx: CallContext) -> None:
        self.stream_id = stream_id
        self.inbox = inbox
        self.ctx = ctx
        self.task: asyncio.Task[None] | None = None
        self.cancel_status: Status | None = None
        """Set by the server before cancelling the task itself (e.g. on stop)."""


async def _read_one(call: ServerCall, method: MethodDescriptor[Any, Any]) -> Any:
    try:
        payloads = await call.inbox.wait_ended()
    except TooManyMessages:
        payloads = [b"", b""]
    if len(payloads) != 1:
        problem = "no request message" if not payloads else "more than one request message"
        raise RpcError(Status.INVALID_ARGUMENT, f"a unary request carries {problem}")
    return decode_message(method.request_type, payloads[0], "request", Status.INVALID_ARGUMENT)


async def _requests(call: ServerCall, method: MethodDescriptor[Any, Any]) -> AsyncIterator[Any]:
    while (payload := await call.inbox.get()) is not None:
        yield decode_message(method.request_type, payload, "request", Status.INVALID_ARGUMENT)


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
        response = await handler(await _read_one(call, method), call.ctx)
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
                last = await _invoke(protocol, call, route)
            else:
                async with timeout:
                    last = await _invoke(protocol, call, route)
            trailer = Trailer(Status.OK, metadata=ctx.response_metadata)
        except asyncio.CancelledError:
            if call.cancel_status is None:
                return  # the caller reset the stream, or the connection is gone
            trailer = Trailer(call.cancel_status, "server stopped before the call finished")
        except TimeoutError as exc:
            if timeout is not None and timeout.expired():
                ctx.mark_cancelled()
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
        protocol.server._tasks.pop(call.task, None)  # type: ignore[arg-type]
