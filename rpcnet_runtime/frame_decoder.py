"""Splitting a stream's bytes into wire protocol v1 frames (the format is in `framing`).

`split_frames` takes the whole frames at the start of a chunk; a `FrameDecoder` carries a frame
that spans chunks over to the next one. Both refuse a frame whose declared length exceeds its
limit, or whose type is unknown, as soon as its 5-byte prefix is seen, before any of its payload
is buffered: MESSAGE frames have `max_frame_size`, HEADER and TRAILER frames the lower
`max_header_size`.
"""

from __future__ import annotations

import functools

from .framing import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_HEADER_SIZE,
    PREFIX_SIZE,
    PREFIX_STRUCT,
    FrameError,
    FrameType,
)
from .status import Status

__all__ = ["FrameDecoder", "Kinds", "frame_kinds", "split_frames"]

_VIEW_MIN = 2048
"""Pieces of a frame at least this big are held as views of their chunk (no copy); smaller
ones are copied, so a frame's pieces number at most about one per 1 KB of it."""


class FrameDecoder:
    """Incremental decoder of one stream's frames.

    `feed` returns the complete frames found so far as ``(type, payload)`` pairs. It raises
    `FrameError` with RESOURCE_EXHAUSTED as soon as a prefix declares a payload larger than
    `max_frame_size`, and with INVALID_ARGUMENT for an unknown frame type. After an error the
    decoder must not be fed again.

    A frame that spans chunks is held as views of those chunks and joined once, when its last
    byte arrives: one copy of its payload, however many chunks it took.
    """

    __slots__ = (
        "_held",
        "_kind",
        "_kinds",
        "_need",
        "_parts",
        "_prefix",
        "max_frame_size",
        "max_header_size",
    )

    def __init__(
        self,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
    ) -> None:
        self.max_frame_size = max_frame_size
        self.max_header_size = min(max_header_size, max_frame_size)
        """HEADER and TRAILER frames (the call's fields and metadata) have this lower limit."""
        self._kinds = frame_kinds(max_frame_size, self.max_header_size)
        self._prefix = b""
        """The first bytes of a prefix not yet complete."""
        self._kind: FrameType | None = None
        """The type of the frame in progress, once its prefix is complete."""
        self._need = 0
        """Payload bytes still missing for the frame in progress."""
        self._parts: list[memoryview | bytearray] = []
        """The frame in progress's payload so far: views of big pieces of the chunks it came
        in, small pieces copied together."""
        self._held = 0
        """Bytes held for the frame in progress, its prefix included."""

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._prefix) + self._held

    @property
    def pending_frame_remaining(self) -> int:
        """Bytes still missing to complete the frame in progress (0 between frames)."""
        if self._kind is not None:
            return self._need
        return PREFIX_SIZE - len(self._prefix) if self._prefix else 0

    def at_boundary(self) -> bool:
        """True when no partial frame is buffered (a FIN here ends the stream cleanly)."""
        return self._kind is None and not self._prefix

    def feed(self, data: bytes, start: int = 0) -> list[tuple[FrameType, bytes]]:
        """The frames completed by ``data[start:]``."""
        frames: list[tuple[FrameType, bytes]] = []
        end = len(data)
        pos = start
        kind = self._kind
        if kind is not None:  # inside a payload
            need = self._need
            if end - pos < need:
                self._hold(memoryview(data)[pos:])
                self._need = need - (end - pos)
                self._held += end - pos
                return frames
            self._hold(memoryview(data)[pos : pos + need])
            frames.append((kind, b"".join(self._parts)))
            self._kind, self._parts, self._held = None, [], 0
            pos += need
        elif self._prefix:
            # A prefix cut by the end of the last chunk (rare): go on as if this chunk had it.
            data = self._prefix + bytes(data[pos:])
            self._prefix = b""
            end = len(data)
            pos = 0
        more, pos = split_frames(data, self._kinds, pos)
        frames += more
        rest = end - pos
        if rest >= PREFIX_SIZE:  # split_frames checked this prefix already
            kind_byte, length = PREFIX_STRUCT.unpack_from(data, pos)
            self._begin(self._kinds[kind_byte][0], length, data, pos + PREFIX_SIZE)
        elif rest:
            self._prefix = bytes(data[pos:])
        return frames

    def _begin(self, kind: FrameType, length: int, data: bytes, pos: int) -> None:
        """Hold the start of a frame of `length` payload bytes whose payload starts at `pos`."""
        have = len(data) - pos
        self._kind = kind
        self._need = length - have
        self._parts = []
        self._hold(memoryview(data)[pos:])
        self._held = PREFIX_SIZE + have

    def _hold(self, piece: memoryview) -> None:
        """Keep `piece` of the payload in progress: a view when it is big, else copied onto the
        small pieces before it, so that a peer sending a frame a few bytes at a time costs a
        few bytes each, not an object each."""
        parts = self._parts
        if len(piece) >= _VIEW_MIN:
            parts.append(piece)
        elif parts and type(parts[-1]) is bytearray:
            parts[-1] += piece
        else:
            parts.append(bytearray(piece))


Kinds = dict[int, tuple[FrameType, int]]
"""Each frame type's byte, with the type and its size limit (`frame_kinds`)."""


def split_frames(
    source: bytes, kinds: Kinds, start: int = 0
) -> tuple[list[tuple[FrameType, bytes]], int]:
    """The whole frames of ``source[start:]`` up to the first partial one, and the offset where
    they end. Raises `FrameError` for an unknown type or a frame above its limit as soon as its
    prefix is seen."""
    frames: list[tuple[FrameType, bytes]] = []
    pos = start
    end = len(source)
    unpack_from = PREFIX_STRUCT.unpack_from
    while end - pos >= PREFIX_SIZE:
        kind, length = unpack_from(source, pos)
        entry = kinds.get(kind)
        if entry is None or length > entry[1]:
            _refuse(kinds, kind, length)
        stop = pos + PREFIX_SIZE + length
        if stop > end:
            break
        frames.append((entry[0], source[pos + PREFIX_SIZE : stop]))  # type: ignore[index]
        pos = stop
    return frames, pos


def _refuse(kinds: Kinds, kind: int, length: int) -> None:
    """Raise the `FrameError` for a prefix of unknown type `kind` or above its limit."""
    entry = kinds.get(kind)
    if entry is None:
        raise FrameError(Status.INVALID_ARGUMENT, f"malformed frame: unknown type 0x{kind:02x}")
    frame_type, limit = entry
    what = "frame" if frame_type is FrameType.MESSAGE else f"{frame_type.name} frame"
    raise FrameError(
        Status.RESOURCE_EXHAUSTED,
        f"{what} of {length} bytes exceeds the limit of {limit} bytes",
    )


@functools.lru_cache(maxsize=64)
def frame_kinds(max_frame_size: int, max_header_size: int) -> Kinds:
    """Each frame type's byte and its size limit (shared by the decoders of one setting);
    HEADER and TRAILER frames have `max_header_size`, MESSAGE frames `max_frame_size`."""
    return {
        int(kind): (kind, max_frame_size if kind is FrameType.MESSAGE else max_header_size)
        for kind in FrameType
    }
