"""Wire protocol v1 framing: pure encoding and decoding of frames over a stream's bytes.

A stream carries frames; each frame is a 5-byte prefix followed by a msgpack payload::

    offset 0   1 byte   frame type (HEADER 0x01, MESSAGE 0x02, TRAILER 0x03)
    offset 1   4 bytes  payload length, unsigned big-endian
    offset 5   n bytes  payload (msgpack)

A request stream is ``HEADER MESSAGE* FIN``; a response stream is ``MESSAGE* TRAILER FIN``.
Header and trailer payloads are msgpack maps with short string keys (see `RequestHeader`
and `Trailer`); a message payload is the message's own wire map. `FrameDecoder` refuses a
frame whose declared length exceeds its limit as soon as the 5-byte prefix is seen, before any
of the payload is buffered (`frame_decoder`). docs/protocol.md is the normative description.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .codec import pack, unpack
from .status import Status

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_SIZE",
    "OK_TRAILER",
    "PREFIX_SIZE",
    "PREFIX_STRUCT",
    "FrameError",
    "FrameType",
    "RequestHeader",
    "Trailer",
    "decode_header",
    "decode_trailer",
    "encode_frame",
    "encode_header",
    "encode_message",
    "encode_trailer",
    "method_id",
]

DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024
DEFAULT_MAX_HEADER_SIZE = 64 * 1024
"""Largest HEADER or TRAILER frame accepted by default: the call's fields and metadata."""
PREFIX_SIZE = 5
PREFIX_STRUCT = struct.Struct(">BI")
"""A frame's prefix: its type byte and its payload length."""
_MAX_LENGTH = 0xFFFF_FFFF


class FrameType(enum.IntEnum):
    """The first byte of every frame."""

    HEADER = 0x01
    MESSAGE = 0x02
    TRAILER = 0x03


class FrameError(Exception):
    """Bytes from the peer are not valid frames; `status` is what the call fails with."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The first frame of a request stream."""

    path: str = ""
    """``package.Service/Method``; may be empty when only `method_id` arrived."""
    method_id: int | None = None
    """`method_id(path)`; computed from `path` when not given."""
    timeout: float | None = None
    """Seconds remaining of the caller's deadline when the call was sent; None: no deadline."""
    idempotency_key: str | None = None
    attempt: int = 1
    """1 for the first attempt, 2 for the first retry or hedge, and so on."""
    is_hedge: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Trailer:
    """The last frame of a response stream: the call's outcome."""

    status: Status
    message: str = ""
    error_name: str | None = None
    """Fully qualified name of a schema error, when the handler raised one."""
    error_fields: Any = None
    """The schema error's wire map (field number to value)."""
    retry_after: float | None = None
    """Server pushback in seconds."""
    not_processed: bool = False
    """True when no handler ran for this call (the server refused or shed it)."""
    metadata: Mapping[str, str] = field(default_factory=dict)


def encode_frame(frame_type: FrameType, payload: bytes) -> bytes:
    """One frame: prefix and payload."""
    return _prefix(frame_type, len(payload)) + payload


def encode_message(wire: Any, head: bytes = b"", tail: bytes = b"") -> bytes:
    """A MESSAGE frame holding a message's wire map, after `head` and before `tail` (other
    frames of the same write), with one copy of the encoded message."""
    payload = pack(wire)
    return b"".join((head, _prefix(FrameType.MESSAGE, len(payload)), payload, tail))


def _prefix(frame_type: FrameType, length: int) -> bytes:
    """The prefix of a frame whose payload is `length` bytes."""
    if length > _MAX_LENGTH:
        raise ValueError("frame payload larger than 4 GiB")
    return PREFIX_STRUCT.pack(frame_type, length)


def method_id(path: str) -> int:
    """The 64-bit id that stands for a method's path on the wire: the first 8 bytes (big
    endian) of the BLAKE2b-64 digest of the UTF-8 path."""
    return _method_id(path)


@functools.lru_cache(maxsize=4096)
def _method_id(path: str) -> int:
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "big")


def _seconds_to_ns(seconds: float) -> int:
    return max(0, round(seconds * 1e9))


# Header keys.
H_PATH, H_METHOD_ID, H_TIMEOUT, H_IDEMPOTENCY_KEY, H_ATTEMPT, H_HEDGE, H_METADATA = range(1, 8)
# Trailer keys.
T_STATUS, T_MESSAGE, T_ERROR, T_FIELDS, T_RETRY_AFTER, T_NOT_PROCESSED, T_METADATA = range(1, 8)


_CACHE_LIMIT = 1024
"""Entries in each header cache below; a full cache is emptied (peers control the keys)."""
_PLAIN_HEADERS: dict[tuple[str, int | None, bool], bytes] = {}
"""Encoded HEADER frames that carry only the method (no deadline, metadata or retry data)."""
_DECODED_HEADERS: dict[bytes, RequestHeader] = {}
"""Decoded plain HEADER payloads (the same bytes for every call of a method)."""


def encode_header(header: RequestHeader, *, send_path: bool = False) -> bytes:
    """A HEADER frame; only fields that differ from their defaults are written.

    The method travels as its 64-bit id, and also as its path when `send_path` is set or no
    id is known.
    """
    plain = (
        header.timeout is None
        and header.idempotency_key is None
        and header.attempt == 1
        and not header.is_hedge
        and not header.metadata
    )
    if plain:
        key = (header.path, header.method_id, send_path)
        frame = _PLAIN_HEADERS.get(key)
        if frame is None:
            frame = _encode_header(header, send_path)
            if len(_PLAIN_HEADERS) >= _CACHE_LIMIT:
                _PLAIN_HEADERS.clear()
            _PLAIN_HEADERS[key] = frame
        return frame
    return _encode_header(header, send_path)


def _encode_header(header: RequestHeader, send_path: bool) -> bytes:
    data: dict[int, Any] = {}
    mid = header.method_id
    if mid is None and header.path:
        mid = _method_id(header.path)
    if mid is not None:
        data[H_METHOD_ID] = mid
    if send_path or mid is None:
        data[H_PATH] = header.path
    if header.timeout is not None:
        data[H_TIMEOUT] = _seconds_to_ns(header.timeout)
    if header.idempotency_key is not None:
        data[H_IDEMPOTENCY_KEY] = header.idempotency_key
    if header.attempt != 1:
        data[H_ATTEMPT] = header.attempt
    if header.is_hedge:
        data[H_HEDGE] = True
    if header.metadata:
        data[H_METADATA] = dict(header.metadata)
    return encode_frame(FrameType.HEADER, pack(data))


def encode_trailer(trailer: Trailer) -> bytes:
    """A TRAILER frame; only fields that differ from their defaults are written."""
    if trailer.status is Status.OK and not trailer.metadata and not trailer.message:
        return _OK_TRAILER
    data: dict[int, Any] = {T_STATUS: int(trailer.status)}
    if trailer.message:
        data[T_MESSAGE] = trailer.message
    if trailer.error_name is not None:
        data[T_ERROR] = trailer.error_name
        data[T_FIELDS] = trailer.error_fields if trailer.error_fields is not None else {}
    if trailer.retry_after is not None:
        data[T_RETRY_AFTER] = _seconds_to_ns(trailer.retry_after)
    if trailer.not_processed:
        data[T_NOT_PROCESSED] = True
    if trailer.metadata:
        data[T_METADATA] = dict(trailer.metadata)
    return encode_frame(FrameType.TRAILER, pack(data))


_OK_TRAILER = encode_frame(FrameType.TRAILER, pack({T_STATUS: 0}))


def _malformed(what: str) -> FrameError:
    return FrameError(Status.INVALID_ARGUMENT, f"malformed {what}")


def _load_map(payload: bytes, what: str) -> dict[Any, Any]:
    try:
        data = unpack(payload)
    except (ValueError, TypeError) as exc:
        raise _malformed(f"{what}: not msgpack ({exc})") from None
    if type(data) is not dict:
        raise _malformed(f"{what}: expected a map, got {type(data).__name__}")
    return data


def _get(data: dict[Any, Any], key: int, kind: type, what: str, name: str) -> Any:
    value = data.get(key)
    # `type() is` on purpose: bool must not pass for int, nor int for bool.
    if value is None or type(value) is kind:
        return value
    raise _malformed(f"{what}: {name} (key {key}) has type {type(value).__name__}")


def _metadata(data: dict[Any, Any], key: int, what: str) -> dict[str, str]:
    md = data.get(key)
    if md is None:
        return {}
    if type(md) is not dict or not all(type(k) is str and type(v) is str for k, v in md.items()):
        raise _malformed(f"{what}: metadata (key {key}) must map strings to strings")
    return md


def decode_header(payload: bytes) -> RequestHeader:
    """Parse a HEADER payload; raises `FrameError` (INVALID_ARGUMENT) when it is malformed."""
    header = _DECODED_HEADERS.get(payload)
    if header is None:
        header = _decode_header(payload)
        if (
            header.timeout is None
            and header.idempotency_key is None
            and header.attempt == 1
            and not header.is_hedge
            and not header.metadata
        ):
            if len(_DECODED_HEADERS) >= _CACHE_LIMIT:
                _DECODED_HEADERS.clear()
            _DECODED_HEADERS[bytes(payload)] = header
    return header


def _decode_header(payload: bytes) -> RequestHeader:
    what = "request header"
    data = _load_map(payload, what)
    path = _get(data, H_PATH, str, what, "path")
    mid = _get(data, H_METHOD_ID, int, what, "method id")
    if not path and mid is None:
        raise _malformed(f"{what}: neither a path nor a method id")
    if path and mid is not None and mid != _method_id(path):
        raise _malformed(f"{what}: the method id does not match the path")
    timeout_ns = _get(data, H_TIMEOUT, int, what, "timeout")
    if timeout_ns is not None and timeout_ns < 0:
        raise _malformed(f"{what}: negative timeout")
    attempt = _get(data, H_ATTEMPT, int, what, "attempt")
    if attempt is not None and attempt < 1:
        raise _malformed(f"{what}: attempt must be >= 1")
    return RequestHeader(
        path=path or "",
        method_id=mid if mid is not None else _method_id(path),
        timeout=None if timeout_ns is None else timeout_ns / 1e9,
        idempotency_key=_get(data, H_IDEMPOTENCY_KEY, str, what, "idempotency key"),
        attempt=1 if attempt is None else attempt,
        is_hedge=bool(_get(data, H_HEDGE, bool, what, "hedge flag")),
        metadata=_metadata(data, H_METADATA, what) or _NO_METADATA,
    )


def decode_trailer(payload: bytes) -> Trailer:
    """Parse a TRAILER payload; raises `FrameError` when it is malformed.

    A status number this implementation does not know becomes UNKNOWN.
    """
    if payload == _OK_PAYLOAD:
        return OK_TRAILER
    what = "trailer"
    data = _load_map(payload, what)
    code = _get(data, T_STATUS, int, what, "status")
    if code is None:
        raise _malformed(f"{what}: missing status")
    try:
        status = Status(code)
    except ValueError:
        status = Status.UNKNOWN
    retry_ns = _get(data, T_RETRY_AFTER, int, what, "retry-after")
    return Trailer(
        status=status,
        message=_get(data, T_MESSAGE, str, what, "message") or "",
        error_name=_get(data, T_ERROR, str, what, "error name"),
        error_fields=data.get(T_FIELDS),
        retry_after=None if retry_ns is None else max(0, retry_ns) / 1e9,
        not_processed=bool(_get(data, T_NOT_PROCESSED, bool, what, "not-processed flag")),
        metadata=_metadata(data, T_METADATA, what),
    )


_NO_METADATA: Mapping[str, str] = MappingProxyType({})
_OK_PAYLOAD = _OK_TRAILER[PREFIX_SIZE:]
OK_TRAILER = Trailer(Status.OK, metadata=_NO_METADATA)
"""The trailer of a successful call with no metadata (shared: trailers are immutable)."""
