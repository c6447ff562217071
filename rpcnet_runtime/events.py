"""What `RpcConnection.handle_event` reports: past-tense facts about calls and the connection.

Treat every event as read-only. The ones built for every call (a request, a message, an end,
a trailer) are not frozen dataclasses only because a frozen one costs twice as much to build.
"""

from __future__ import annotations

from dataclasses import dataclass

from .framing import RequestHeader, Trailer
from .status import Status

__all__ = [
    "CallFailed",
    "CallReset",
    "ConnectionReady",
    "ConnectionTerminated",
    "InputEnded",
    "MessageReceived",
    "RequestReceived",
    "RpcEvent",
    "TrailerReceived",
]


class RpcEvent:
    """Base of the events of the RPC core."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ConnectionReady(RpcEvent):
    """The handshake completed; a server must authenticate the peer before calls flow."""

    alpn_protocol: str | None


@dataclass(frozen=True, slots=True)
class ConnectionTerminated(RpcEvent):
    """The QUIC connection is gone; every call still open on it has failed."""

    error_code: int
    reason: str
    stream_ids: tuple[int, ...]
    """The calls that were open when the connection ended."""


@dataclass(slots=True)
class RequestReceived(RpcEvent):
    """Server: a new call's header arrived on `stream_id`.

    When the whole request of a unary call arrived at once (header, one message, FIN), the
    message and the end come with this event instead of as `MessageReceived` and `InputEnded`.
    """

    stream_id: int
    header: RequestHeader
    message: bytes | None = None
    """The request's only message, when it arrived together with the header."""
    ended: bool = False
    """True when the request stream ended too."""


@dataclass(slots=True)
class MessageReceived(RpcEvent):
    """A message frame arrived; `payload` is its msgpack bytes."""

    stream_id: int
    payload: bytes
    size: int
    """Bytes the frame took on the stream; hand it back to `RpcConnection.consume` once the
    application took the message, so the peer may send more."""


@dataclass(slots=True)
class InputEnded(RpcEvent):
    """Server: the caller finished sending (FIN after whole frames)."""

    stream_id: int


@dataclass(slots=True)
class TrailerReceived(RpcEvent):
    """Client: the call ended with this trailer; the call is over.

    A last message that arrived in the same chunk as the trailer comes with it (`message`)
    instead of as a `MessageReceived`.
    """

    stream_id: int
    trailer: Trailer
    message: bytes | None = None


@dataclass(frozen=True, slots=True)
class CallReset(RpcEvent):
    """The peer reset the stream or asked us to stop sending: the call is abandoned."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class CallFailed(RpcEvent):
    """The core found bad input on this call and ended it itself.

    A server has already sent the trailer (and stopped reading); a client has reset the stream.
    """

    stream_id: int
    status: Status
    message: str
