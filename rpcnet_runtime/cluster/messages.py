"""SWIM messages and their msgpack encoding.

A packet is ``[VERSION, sender_id, [message, ...]]`` and each message is a list
``[MessageType, field, ...]``. One packet usually carries one protocol message (a ping, an ack)
followed by piggybacked membership updates (alive, suspect, dead). `decode_packet` checks every
field's type and size and raises `MessageError` on anything else, so a node can drop bad input
with a counter instead of failing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgpack

from .types import MemberState

__all__ = [
    "VERSION",
    "Ack",
    "Alive",
    "Dead",
    "IndirectPing",
    "MemberSnapshot",
    "Message",
    "MessageError",
    "MessageType",
    "Nack",
    "Packet",
    "Ping",
    "PushPull",
    "Suspect",
    "decode_packet",
    "encode_packet",
    "encoded_size",
]

VERSION = 1
_MAX_ID = 256
_MAX_ADDRESS = 512
_MAX_TAGS = 64
_MAX_TAG_CHARS = 256
_MAX_MESSAGES = 4096
_MAX_INT = 2**63 - 1


class MessageError(ValueError):
    """Incoming bytes are not a well-formed packet."""


class MessageType(enum.IntEnum):
    PING = 1
    INDIRECT_PING = 2
    ACK = 3
    NACK = 4
    ALIVE = 5
    SUSPECT = 6
    DEAD = 7
    PUSH_PULL = 8


@dataclass(frozen=True, slots=True)
class Ping:
    """Direct probe of `target_id`; answered with `Ack(seq)` to `source_address`."""

    seq: int
    target_id: str
    source_address: str


@dataclass(frozen=True, slots=True)
class IndirectPing:
    """Ask the receiver to probe `target_id` for us and forward its ack (ping-req)."""

    seq: int
    target_id: str
    target_address: str
    source_address: str
    nack: bool = True
    """Whether the relay answers `Nack(seq)` when the target does not ack in time (Lifeguard)."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Answer to `Ping(seq)`, or forwarded by the relay of an `IndirectPing(seq)`."""

    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    """The relay of `IndirectPing(seq)` got no ack from the target in time."""

    seq: int


@dataclass(frozen=True, slots=True)
class Alive:
    """`node_id` is alive at `incarnation`, reachable at `address`, with `tags`."""

    node_id: str
    incarnation: int
    address: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))

    def __hash__(self) -> int:
        return hash((self.node_id, self.incarnation, self.address))


@dataclass(frozen=True, slots=True)
class Suspect:
    """`from_id` suspects `node_id` at `incarnation`."""

    node_id: str
    incarnation: int
    from_id: str


@dataclass(frozen=True, slots=True)
class Dead:
    """`from_id` declares `node_id` failed at `incarnation`; from_id == node_id means it left."""

    node_id: str
    incarnation: int
    from_id: str

    @property
    def is_leave(self) -> bool:
        return self.from_id == self.node_id


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """One member as the sender of a full state sync sees it."""

    node_id: str
    address: str
    tags: Mapping[str, str]
    state: MemberState
    incarnation: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", MappingProxyType(dict(self.tags)))

    def __hash__(self) -> int:
        return hash((self.node_id, self.incarnation, self.state))


@dataclass(frozen=True, slots=True)
class PushPull:
    """Full state sync: a request (answered with the receiver's state) or the response."""

    states: tuple[MemberSnapshot, ...]
    reply_address: str
    is_response: bool = False
    join: bool = False


Message = Ping | IndirectPing | Ack | Nack | Alive | Suspect | Dead | PushPull


@dataclass(frozen=True, slots=True)
class Packet:
    sender_id: str
    messages: tuple[Message, ...]


_STATE_CODES = {
    MemberState.ALIVE: 0,
    MemberState.SUSPECT: 1,
    MemberState.FAILED: 2,
    MemberState.LEFT: 3,
}
_CODE_STATES = {v: k for k, v in _STATE_CODES.items()}


def _to_wire(m: Message) -> list[Any]:
    match m:
        case Ping():
            return [MessageType.PING, m.seq, m.target_id, m.source_address]
        case IndirectPing():
            return [
                MessageType.INDIRECT_PING,
                m.seq,
                m.target_id,
                m.target_address,
                m.source_address,
                m.nack,
            ]
        case Ack():
            return [MessageType.ACK, m.seq]
        case Nack():
            return [MessageType.NACK, m.seq]
        case Alive():
            return [MessageType.ALIVE, m.node_id, m.incarnation, m.address, dict(m.tags)]
        case Suspect():
            return [MessageType.SUSPECT, m.node_id, m.incarnation, m.from_id]
        case Dead():
            return [MessageType.DEAD, m.node_id, m.incarnation, m.from_id]
        case PushPull():
            states = [
                [s.node_id, s.address, dict(s.tags), _STATE_CODES[s.state], s.incarnation]
                for s in m.states
            ]
            return [MessageType.PUSH_PULL, states, m.reply_address, m.is_response, m.join]
    raise TypeError(f"not a SWIM message: {m!r}")  # pragma: no cover


def encode_packet(sender_id: str, messages: Iterable[Message]) -> bytes:
    """Encode `messages` from `sender_id` as one packet."""
    body = [VERSION, sender_id, [_to_wire(m) for m in messages]]
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def encoded_size(message: Message) -> int:
    """Bytes `message` adds to a packet."""
    return len(msgpack.packb(_to_wire(message), use_bin_type=True))


# -- decoding ----------------------------------------------------------------------------------


def _fail(what: str) -> MessageError:
    return MessageError(what)


def _str(v: object, limit: int, what: str) -> str:
    if not isinstance(v, str) or len(v) > limit:
        raise _fail(f"bad {what}")
    return v


def _id(v: object, what: str = "node id") -> str:
    s = _str(v, _MAX_ID, what)
    if not s:
        raise _fail(f"empty {what}")
    return s


def _int(v: object, what: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= _MAX_INT:
        raise _fail(f"bad {what}")
    return v


def _bool(v: object, what: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(f"bad {what}")
    return v


def _tags(v: object) -> dict[str, str]:
    if not isinstance(v, dict) or len(v) > _MAX_TAGS:
        raise _fail("bad tags")
    return {_str(k, _MAX_TAG_CHARS, "tag"): _str(x, _MAX_TAG_CHARS, "tag") for k, x in v.items()}


def _fields(raw: Sequence[Any], count: int) -> Sequence[Any]:
    if len(raw) != count + 1:
        raise _fail(f"message type {raw[0]} needs {count} fields")
    return raw[1:]


def _snapshot(raw: object) -> MemberSnapshot:
    if not isinstance(raw, list) or len(raw) != 5:
        raise _fail("bad member snapshot")
    node_id, address, tags, state, inc = raw
    code = _int(state, "state")
    if code not in _CODE_STATES:
        raise _fail("bad state")
    return MemberSnapshot(
        _id(node_id),
        _str(address, _MAX_ADDRESS, "address"),
        _tags(tags),
        _CODE_STATES[code],
        _int(inc, "incarnation"),
    )


def _from_wire(raw: object, max_states: int) -> Message:
    if not isinstance(raw, list) or not raw:
        raise _fail("message is not a list")
    kind = raw[0]
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise _fail("bad message type")
    if kind == MessageType.PING:
        seq, target, src = _fields(raw, 3)
        return Ping(_int(seq, "seq"), _id(target), _str(src, _MAX_ADDRESS, "address"))
    if kind == MessageType.INDIRECT_PING:
        seq, target, taddr, src, nack = _fields(raw, 5)
        return IndirectPing(
            _int(seq, "seq"),
            _id(target),
            _str(taddr, _MAX_ADDRESS, "address"),
            _str(src, _MAX_ADDRESS, "address"),
            _bool(nack, "nack"),
        )
    if kind == MessageType.ACK:
        (seq,) = _fields(raw, 1)
        return Ack(_int(seq, "seq"))
    if kind == MessageType.NACK:
        (seq,) = _fields(raw, 1)
        return Nack(_int(seq, "seq"))
    if kind == MessageType.ALIVE:
        node, inc, addr, tags = _fields(raw, 4)
        return Alive(
            _id(node), _int(inc, "incarnation"), _str(addr, _MAX_ADDRESS, "address"), _tags(tags)
        )
    if kind in (MessageType.SUSPECT, MessageType.DEAD):
        node, inc, frm = _fields(raw, 3)
        cls = Suspect if kind == MessageType.SUSPECT else Dead
        return cls(_id(node), _int(inc, "incarnation"), _id(frm))
    if kind == MessageType.PUSH_PULL:
        states, reply, is_response, join = _fields(raw, 4)
        if not isinstance(states, list) or len(states) > max_states:
            raise _fail("bad state list")
        return PushPull(
            tuple(_snapshot(s) for s in states),
            _str(reply, _MAX_ADDRESS, "address"),
            _bool(is_response, "is_response"),
            _bool(join, "join"),
        )
    raise _fail(f"unknown message type {kind}")


def decode_packet(data: bytes, *, max_bytes: int, max_states: int = 10_000) -> Packet:
    """Decode and validate one packet; raises `MessageError` on anything malformed."""
    if len(data) > max_bytes:
        raise MessageError(f"packet of {len(data)} bytes exceeds {max_bytes}")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise MessageError(f"not msgpack: {exc}") from None
    if not isinstance(body, list) or len(body) != 3:
        raise MessageError("packet is not [version, sender, messages]")
    version, sender, raw_messages = body
    if version != VERSION:
        raise MessageError(f"unsupported version {version!r}")
    if not isinstance(raw_messages, list) or len(raw_messages) > _MAX_MESSAGES:
        raise MessageError("bad message list")
    try:
        messages = tuple(_from_wire(m, max_states) for m in raw_messages)
    except (TypeError, ValueError) as exc:  # e.g. unpacking a field list of the wrong length
        raise MessageError(str(exc)) from None
    return Packet(_id(sender, "sender id"), messages)
