"""The client side of one QUIC connection, and how a trailer becomes the caller's error."""

from __future__ import annotations

import asyncio
from typing import Any

from aioquic.quic.connection import QuicConnection

from .config import ClientConfig
from .connection import CLOSE_NO_ERROR, CLOSE_UNAUTHENTICATED
from .descriptors import MethodDescriptor
from .errors import RpcError
from .events import (
    CallFailed,
    CallReset,
    ConnectionReady,
    ConnectionTerminated,
    MessageReceived,
    RpcEvent,
    TrailerReceived,
)
from .framing import Trailer
from .protocol import CallInbox, RpcProtocol, drain_icmp_errors
from .status import Status

__all__ = ["ClientProtocol", "RefusalDetector", "trailer_error"]


class RefusalDetector:
    """Sans-IO: decides that a peer is gone after `count` "port unreachable" refusals within
    `window` seconds (a single one may be spurious, e.g. a stale ICMP after a restart)."""

    __slots__ = ("_times", "count", "window")

    def __init__(self, count: int = 2, window: float = 1.0) -> None:
        if count < 1 or window <= 0:
            raise ValueError("count must be >= 1 and window > 0")
        self.count = count
        self.window = window
        self._times: list[float] = []

    def refused(self, now: float) -> bool:
        """Record a refusal at `now`; True once the peer should be taken as dead."""
        times = [t for t in self._times if now - t < self.window]
        times.append(now)
        self._times = times[-self.count :]  # bounded, whatever the caller does after True
        return len(times) >= self.count


class ClientProtocol(RpcProtocol):
    """The client side of one connection."""

    def __init__(self, quic: QuicConnection, *, config: ClientConfig) -> None:
        super().__init__(quic, is_client=True, config=config)
        self.calls: dict[int, CallInbox] = {}
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.termination: RpcError | None = None
        """Why the connection ended, for calls that had not been sent (not processed)."""
        self.refusals = RefusalDetector()

    def error_received(self, exc: Exception) -> None:
        """A socket error (Linux reports ICMP port unreachable as ConnectionRefusedError once
        `enable_icmp_errors` is on): repeated refusals mean the server's port is closed."""
        drain_icmp_errors(self._transport)
        if self.terminated or not isinstance(exc, ConnectionRefusedError):
            return
        if self.refusals.refused(self.loop.time()):
            self._terminated("the server's port is closed (connection refused)")

    def rpc_event_received(self, event: RpcEvent) -> None:
        if isinstance(event, TrailerReceived):  # first: every call ends with one
            inbox = self.calls.pop(event.stream_id, None)
            if inbox is not None:
                inbox.finish(event.trailer, event.message)
        elif isinstance(event, MessageReceived):
            inbox = self.calls.get(event.stream_id)
            if inbox is not None:
                inbox.push(event.payload, event.size)
        elif isinstance(event, CallFailed):
            inbox = self.calls.pop(event.stream_id, None)
            if inbox is not None:
                inbox.fail(RpcError(event.status, event.message))
        elif isinstance(event, CallReset):
            inbox = self.calls.pop(event.stream_id, None)
            if inbox is not None:
                inbox.fail(RpcError(_status(event.error_code), "the server reset the call"))
        elif isinstance(event, ConnectionReady):
            if not self.ready.done():
                self.ready.set_result(None)
        elif isinstance(event, ConnectionTerminated):
            self._terminated(event.reason or f"error code {event.error_code}", event.error_code)

    def _terminated(self, reason: str, error_code: int = CLOSE_NO_ERROR) -> None:
        if self.terminated:
            return
        self.connection_terminated()
        status = Status.UNAVAILABLE
        if error_code == CLOSE_UNAUTHENTICATED:
            status = Status.UNAUTHENTICATED
        error = RpcError(status, f"connection lost: {reason}")
        self.termination = RpcError(status, error.message, not_processed=True)
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved: nobody may be waiting any more
        calls, self.calls = self.calls, {}
        for inbox in calls.values():
            inbox.fail(error)
        if self._transport is not None:
            # After this turn's datagrams (a CONNECTION_CLOSE) left, the socket and its timer
            # have nothing more to do.
            self.loop.call_soon(self._close_transport)

    def _close_transport(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()

    def abandon(self, stream_id: int, status: Status = Status.CANCELLED) -> None:
        """Reset a call the caller gave up on."""
        if self.calls.pop(stream_id, None) is not None and not self.terminated:
            self.core.cancel(stream_id, status)
            self.transmit_soon()

    def shutdown(self) -> None:
        if not self.terminated:
            self.core.close(0, "client closed")
            self.transmit()
        self._terminated("channel closed")


def _status(code: int) -> Status:
    try:
        return Status(code)
    except ValueError:
        return Status.UNKNOWN


def trailer_error(method: MethodDescriptor[Any, Any], trailer: Trailer) -> RpcError:
    if trailer.error_name is not None:
        for error_type in method.errors:
            if error_type.error_name == trailer.error_name:
                try:
                    error = error_type.from_wire(trailer.error_fields)
                except Exception:
                    break
                error.metadata = dict(trailer.metadata)
                if trailer.message:
                    error.message = trailer.message
                return error
        return RpcError(
            Status.UNKNOWN,
            f"{trailer.error_name}: {trailer.message}",
            metadata=trailer.metadata,
        )
    message = trailer.message
    if trailer.status is Status.UNIMPLEMENTED and method.path not in message:
        message = f"{message} ({method.path})"
    return RpcError(
        trailer.status,
        message,
        metadata=trailer.metadata,
        retry_after_seconds=trailer.retry_after,
        not_processed=trailer.not_processed,
    )
