"""msgpack with the options rpcnet's wire format fixes, and the value conventions.

Values inside a message map ``{field_number: value}``:

- bool, integers, floats, strings (str) and bytes (bin) as msgpack's own types;
- ``timestamp``: msgpack's timestamp extension (type -1), a UTC-aware `datetime` in Python;
- ``duration``: an integer count of nanoseconds, a `timedelta` in Python;
- enums: their integer value; messages: a nested map; unions: a map with exactly one entry;
- ``list<T>``: an array; ``map<K, V>``: a msgpack map;
- an absent field (``optional`` left None, a message-typed field left None) is left out.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import msgpack

__all__ = ["duration_from_wire", "duration_to_wire", "pack", "unpack"]

_packer_options: dict[str, Any] = {"use_bin_type": True, "datetime": True}
_local = threading.local()


def pack(value: Any) -> bytes:
    """Encode a wire value (maps, lists, scalars) as msgpack.

    Reuses one `msgpack.Packer` per thread: building a packer per call costs about a third of
    the encoding time of a small message.
    """
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(**_packer_options)
    try:
        data: bytes = packer.pack(value)
    except BaseException:
        packer.reset()  # a failed pack must not leave half a value in the next one
        raise
    return data


def unpack(data: bytes) -> Any:
    """Decode msgpack bytes; raises ValueError (msgpack's own subclasses) on garbage."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=3)


def duration_to_wire(value: timedelta) -> int:
    """A timedelta as integer nanoseconds."""
    return (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000


def duration_from_wire(value: int) -> timedelta:
    """Integer nanoseconds as a timedelta (sub-microsecond precision is dropped)."""
    return timedelta(microseconds=value // 1_000)
