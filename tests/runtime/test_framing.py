"""Framing: round trips, incremental decoding at any split, limits and malformed input."""

from __future__ import annotations

import hashlib
import itertools
import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpcnet_runtime.codec import pack
from rpcnet_runtime.frame_decoder import FrameDecoder, frame_kinds, split_frames
from rpcnet_runtime.framing import (
    PREFIX_SIZE,
    FrameError,
    FrameType,
    RequestHeader,
    Trailer,
    decode_header,
    decode_trailer,
    encode_frame,
    encode_header,
    encode_message,
    encode_trailer,
    method_id,
)
from rpcnet_runtime.status import Status


def test_header_round_trip_keeps_every_field() -> None:
    header = RequestHeader(
        path="acme.v1.Svc/Do",
        timeout=1.25,
        idempotency_key="k-1",
        attempt=3,
        is_hedge=True,
        metadata={"a": "b"},
    )
    frames = FrameDecoder().feed(encode_header(header, send_path=True))
    assert [kind for kind, _ in frames] == [FrameType.HEADER]
    assert decode_header(frames[0][1]) == replace(header, method_id=method_id(header.path))


def test_header_defaults_are_left_out_of_the_wire() -> None:
    data = encode_header(RequestHeader(path="p.S/M"))
    mid = method_id("p.S/M")
    assert data[PREFIX_SIZE:] == pack({2: mid})
    assert decode_header(data[PREFIX_SIZE:]) == RequestHeader(method_id=mid)


def test_method_id_is_blake2b_64_of_the_path() -> None:
    assert method_id("p.S/M") == int.from_bytes(
        hashlib.blake2b(b"p.S/M", digest_size=8).digest(), "big"
    )
    assert method_id("p.S/M") != method_id("p.S/N")


def test_a_path_alone_is_accepted_and_a_mismatched_id_refused() -> None:
    assert decode_header(pack({1: "p.S/M"})).method_id == method_id("p.S/M")
    with pytest.raises(FrameError, match="does not match"):
        decode_header(pack({1: "p.S/M", 2: 5}))


def test_trailer_round_trip_keeps_every_field() -> None:
    trailer = Trailer(
        status=Status.RESOURCE_EXHAUSTED,
        message="busy",
        error_name="acme.v1.Overloaded",
        error_fields={1: "busy"},
        retry_after=0.5,
        not_processed=True,
        metadata={"x": "y"},
    )
    ((kind, payload),) = FrameDecoder().feed(encode_trailer(trailer))
    assert kind is FrameType.TRAILER
    assert decode_trailer(payload) == trailer


def test_unknown_status_number_becomes_unknown() -> None:
    assert decode_trailer(pack({1: 99})).status is Status.UNKNOWN


def test_ok_trailer_is_tiny() -> None:
    assert len(encode_trailer(Trailer(Status.OK))) == PREFIX_SIZE + 3


@given(
    messages=st.lists(st.dictionaries(st.integers(1, 50), st.binary(max_size=40)), max_size=6),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_decoder_finds_the_same_frames_at_any_split(
    messages: list[dict[int, bytes]], cuts: list[int]
) -> None:
    stream = (
        encode_header(RequestHeader(path="p.S/M"))
        + b"".join(encode_message(m) for m in messages)
        + encode_trailer(Trailer(Status.OK))
    )
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    frames = []
    for start, stop in itertools.pairwise(points):
        frames += decoder.feed(stream[start:stop])
    assert decoder.at_boundary()
    assert [k for k, _ in frames] == (
        [FrameType.HEADER] + [FrameType.MESSAGE] * len(messages) + [FrameType.TRAILER]
    )
    assert frames[1 : 1 + len(messages)] == [(FrameType.MESSAGE, pack(m)) for m in messages]


def test_oversized_frame_is_refused_from_its_prefix_alone() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    prefix = struct.pack(">BI", FrameType.MESSAGE, 1001)
    with pytest.raises(FrameError) as info:
        decoder.feed(prefix)  # no payload byte has arrived yet
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    assert "1001" in info.value.message


def test_frame_at_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    assert decoder.feed(encode_frame(FrameType.MESSAGE, b"x" * 10)) == [
        (FrameType.MESSAGE, b"x" * 10)
    ]


def test_oversized_frame_split_inside_its_prefix_is_refused() -> None:
    decoder = FrameDecoder(max_frame_size=10)
    data = encode_frame(FrameType.MESSAGE, b"x" * 11)
    assert decoder.feed(data[:3]) == []
    with pytest.raises(FrameError):
        decoder.feed(data[3:6])


def test_unknown_frame_type_is_malformed() -> None:
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(b"\x09\x00\x00\x00\x00")
    assert info.value.status is Status.INVALID_ARGUMENT


def test_pending_frame_remaining_counts_missing_bytes() -> None:
    decoder = FrameDecoder()
    data = encode_frame(FrameType.MESSAGE, b"y" * 100)
    decoder.feed(data[:2])
    assert decoder.pending_frame_remaining == PREFIX_SIZE - 2 and decoder.buffered == 2
    decoder.feed(data[2:50])
    assert decoder.pending_frame_remaining == len(data) - 50 and decoder.buffered == 50
    assert not decoder.at_boundary()
    decoder.feed(data[50:])
    assert decoder.pending_frame_remaining == 0 and decoder.buffered == 0


def test_feed_starts_where_it_is_told_and_joins_a_frame_spread_over_chunks() -> None:
    body = bytes(range(256)) * 40
    data = encode_message({1: body}, head=encode_header(RequestHeader("a.S/M")))
    header_end = len(encode_header(RequestHeader("a.S/M")))
    decoder = FrameDecoder()
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    frames = decoder.feed(chunks[0], header_end)  # the header was taken by someone else
    for chunk in chunks[1:]:
        frames += decoder.feed(chunk)
    assert frames == [(FrameType.MESSAGE, pack({1: body}))]
    assert decoder.at_boundary()


def test_encode_message_writes_head_and_tail_around_the_frame() -> None:
    head, tail = encode_header(RequestHeader("a.S/M")), encode_trailer(Trailer(Status.OK))
    assert encode_message({1: "x"}, head=head, tail=tail) == (
        head + encode_frame(FrameType.MESSAGE, pack({1: "x"})) + tail
    )


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\xc1", "not msgpack"),
        (pack([1, 2]), "expected a map"),
        (pack({}), "neither a path nor a method id"),
        (pack({1: 5}), "path (key 1)"),
        (pack({2: "x"}), "method id (key 2)"),
        (pack({2: 1, 3: "soon"}), "timeout (key 3)"),
        (pack({2: 1, 3: -1}), "negative"),
        (pack({2: 1, 5: 0}), "attempt"),
        (pack({2: 1, 5: True}), "attempt (key 5)"),
        (pack({2: 1, 6: 1}), "hedge flag (key 6)"),
        (pack({2: 1, 7: {"a": 1}}), "metadata (key 7)"),
    ],
)
def test_malformed_headers_name_the_problem(payload: bytes, needle: str) -> None:
    with pytest.raises(FrameError) as info:
        decode_header(payload)
    assert info.value.status is Status.INVALID_ARGUMENT
    assert needle in info.value.message


def test_malformed_trailer_without_status() -> None:
    with pytest.raises(FrameError, match="missing status"):
        decode_trailer(pack({2: "x"}))


def test_protocol_doc_example_bytes() -> None:
    """The example in docs/protocol.md §10, byte for byte."""
    header = encode_header(RequestHeader(path="p.S/M", timeout=2.0))
    assert header.hex(" ") == ("01 00 00 00 11 82 02 cf c3 50 67 d6 26 70 60 83 03 ce 77 35 94 00")
    assert encode_message({1: "hi"}).hex(" ") == "02 00 00 00 05 81 01 a2 68 69"
    assert encode_trailer(Trailer(Status.OK)).hex(" ") == "03 00 00 00 03 81 01 00"


def test_plain_headers_are_encoded_once_per_method() -> None:
    plain = RequestHeader(path="cache.S/Plain")
    first = encode_header(plain)
    assert encode_header(RequestHeader(path="cache.S/Plain")) is first
    assert encode_header(plain, send_path=True) != first  # the path travels too: another entry
    timed = RequestHeader(path="cache.S/Plain", timeout=1.0)
    assert encode_header(timed) is not encode_header(timed)  # a deadline is never cached
    assert decode_header(encode_header(timed)[PREFIX_SIZE:]).timeout == 1.0


def test_decoded_plain_headers_are_shared_and_read_only() -> None:
    payload = encode_header(RequestHeader(path="cache.S/Decode"))[PREFIX_SIZE:]
    header = decode_header(payload)
    assert decode_header(bytes(payload)) is header
    with pytest.raises(TypeError):
        header.metadata["k"] = "v"  # type: ignore[index]
    with_metadata = encode_header(RequestHeader(path="cache.S/Decode", metadata={"k": "v"}))
    first = decode_header(with_metadata[PREFIX_SIZE:])
    assert first.metadata == {"k": "v"}
    assert decode_header(with_metadata[PREFIX_SIZE:]) is not first  # only plain headers


def test_header_caches_stay_bounded() -> None:
    from rpcnet_runtime import framing

    for n in range(framing._CACHE_LIMIT + 10):
        data = encode_header(RequestHeader(path=f"bound.S/M{n}"))
        decode_header(data[PREFIX_SIZE:])
        assert len(framing._PLAIN_HEADERS) <= framing._CACHE_LIMIT
        assert len(framing._DECODED_HEADERS) <= framing._CACHE_LIMIT


def test_a_malformed_header_is_refused_every_time() -> None:
    payload = pack({2: "not an int"})
    for _ in range(2):
        with pytest.raises(FrameError):
            decode_header(payload)


@pytest.mark.parametrize("kind", [FrameType.HEADER, FrameType.TRAILER])
def test_header_and_trailer_frames_have_their_own_lower_limit(kind: FrameType) -> None:
    decoder = FrameDecoder(max_frame_size=1_000_000, max_header_size=100)
    # A MESSAGE of 1,000 bytes passes; a HEADER or TRAILER that big is refused from its prefix.
    assert len(decoder.feed(encode_frame(FrameType.MESSAGE, b"m" * 1000))) == 1
    with pytest.raises(FrameError) as info:
        decoder.feed(struct.pack(">BI", kind, 101))
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    assert f"{kind.name} frame of 101 bytes exceeds the limit of 100 bytes" in info.value.message
    ok = FrameDecoder(max_frame_size=1_000_000, max_header_size=100)
    assert ok.feed(encode_frame(kind, b"h" * 100)) == [(kind, b"h" * 100)]


def test_the_header_limit_never_exceeds_the_frame_limit() -> None:
    decoder = FrameDecoder(max_frame_size=50, max_header_size=100)
    with pytest.raises(FrameError, match="limit of 50 bytes"):
        decoder.feed(struct.pack(">BI", FrameType.HEADER, 51))


def test_split_frames_returns_the_whole_frames_and_where_they_end() -> None:
    kinds = frame_kinds(1000, 100)
    header, message = encode_header(RequestHeader("a.S/M")), encode_message({1: "x"})
    whole = header + message
    assert split_frames(whole, kinds) == (
        [(FrameType.HEADER, header[PREFIX_SIZE:]), (FrameType.MESSAGE, message[PREFIX_SIZE:])],
        len(whole),
    )
    for cut in range(1, len(message)):  # a partial frame after the header: left for a decoder
        frames, used = split_frames(header + message[:cut], kinds)
        assert frames == [(FrameType.HEADER, header[PREFIX_SIZE:])] and used == len(header)
    assert split_frames(b"", kinds) == ([], 0)


def test_split_frames_refuses_a_frame_from_its_prefix() -> None:
    kinds = frame_kinds(1000, 100)
    with pytest.raises(FrameError) as info:
        split_frames(encode_message({}) + struct.pack(">BI", FrameType.MESSAGE, 1001), kinds)
    assert info.value.status is Status.RESOURCE_EXHAUSTED
    with pytest.raises(FrameError, match="HEADER frame of 101 bytes"):
        split_frames(struct.pack(">BI", FrameType.HEADER, 101), kinds)
    with pytest.raises(FrameError, match="unknown type 0x09") as info:
        split_frames(b"\x09\x00\x00\x00\x00", kinds)
    assert info.value.status is Status.INVALID_ARGUMENT


def test_a_frame_trickled_a_byte_at_a_time_is_held_compactly() -> None:
    """A peer may send a big frame in tiny pieces: they are copied together, not kept as one
    object each (which would cost far more memory than the frame itself)."""
    body = bytes(range(256)) * 400
    data = encode_message({1: body})
    decoder = FrameDecoder()
    frames = []
    for i in range(len(data) - 1):
        frames += decoder.feed(data[i : i + 1])
    assert not frames and len(decoder._parts) == 1
    assert decoder.buffered == len(data) - 1
    frames += decoder.feed(data[-1:])
    assert frames == [(FrameType.MESSAGE, pack({1: body}))]


def test_big_pieces_of_a_frame_are_held_as_views_of_their_chunks() -> None:
    body = bytes(range(256)) * 400
    data = encode_message({1: body})
    decoder = FrameDecoder()
    chunks = [data[i : i + 30_000] for i in range(0, len(data), 30_000)]
    for chunk in chunks[:-1]:
        assert decoder.feed(chunk) == []
    assert all(type(part) is memoryview for part in decoder._parts)
    assert decoder.feed(chunks[-1]) == [(FrameType.MESSAGE, pack({1: body}))]
