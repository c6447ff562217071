"""Property tests of the core: arbitrary bytes and arbitrary call histories never break it."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quic_pair import make_pair

from rpcnet_runtime.certs import DevCerts
from rpcnet_runtime.events import (
    CallFailed,
    CallReset,
    ConnectionTerminated,
    InputEnded,
    MessageReceived,
    RequestReceived,
    TrailerReceived,
)
from rpcnet_runtime.framing import FrameType, RequestHeader, Trailer, encode_frame, encode_header
from rpcnet_runtime.status import Status

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

frame_chunks = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.builds(
            encode_frame,
            st.sampled_from(list(FrameType)),
            st.binary(max_size=30),
        ),
        st.just(encode_header(RequestHeader(path="p.S/M"))),
    ),
    min_size=1,
    max_size=5,
)


@SETTINGS
@given(chunks=frame_chunks, fin=st.booleans())
def test_garbage_on_a_stream_fails_at_most_that_call(
    dev_certs: DevCerts, chunks: list[bytes], fin: bool
) -> None:
    pair = make_pair(dev_certs, max_frame_size=64)
    pair.take_server()
    sid = pair.client.quic.get_next_available_stream_id()
    for i, chunk in enumerate(chunks):
        try:
            pair.client.quic.send_stream_data(sid, chunk, fin and i == len(chunks) - 1)
        except ValueError:
            break  # the server already stopped this stream (STOP_SENDING)
        pair.pump()
    events = pair.take_server()
    assert not any(isinstance(e, ConnectionTerminated) for e in events)
    assert sum(isinstance(e, CallFailed) for e in events) <= 1
    if any(isinstance(e, CallFailed) for e in events):
        # The caller got a trailer saying why.
        assert pair.server.quic._close_event is None
    # The connection still carries a good call.
    good = pair.client.send_request(RequestHeader(path="p.S/M"), {1: 1}, end_stream=True)
    pair.pump()
    assert any(isinstance(e, RequestReceived) and e.stream_id == good for e in pair.take_server())


actions = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "client_message",
                "client_end",
                "client_cancel",
                "server_message",
                "server_trailer",
                "server_error",
                "pump",
            ]
        ),
        st.integers(0, 2),
    ),
    max_size=25,
)


@SETTINGS
@given(script=actions)
def test_any_call_history_keeps_both_sides_consistent(
    dev_certs: DevCerts, script: list[tuple[str, int]]
) -> None:
    pair = make_pair(dev_certs)
    pair.take_server()
    pair.take_client()
    sids = [pair.client.send_request(RequestHeader(path="p.S/M")) for _ in range(3)]
    pair.pump()
    for action, index in script:
        sid = sids[index]
        if action == "client_message":
            pair.client.send_message(sid, {1: index})
        elif action == "client_end":
            pair.client.end_input(sid)
        elif action == "client_cancel":
            pair.client.cancel(sid)
        elif action == "server_message":
            pair.server.send_message(sid, {1: index})
        elif action == "server_trailer":
            pair.server.send_trailer(sid, Trailer(Status.OK), {1: index})
        elif action == "server_error":
            pair.server.send_trailer(sid, Trailer(Status.ABORTED, "no"))
        else:
            pair.pump()
    pair.pump()
    client_events = pair.take_client()
    server_events = pair.take_server()
    assert not any(isinstance(e, ConnectionTerminated | CallFailed) for e in client_events)
    assert not any(isinstance(e, ConnectionTerminated | CallFailed) for e in server_events)
    for sid in sids:
        mine: list[Any] = [e for e in client_events if getattr(e, "stream_id", None) == sid]
        ends = [e for e in mine if isinstance(e, TrailerReceived)]
        assert len(ends) <= 1
        if ends:  # nothing after the trailer
            assert mine[-1] is ends[0]
        theirs = [e for e in server_events if getattr(e, "stream_id", None) == sid]
        resets = [e for e in theirs if isinstance(e, CallReset)]
        assert len(resets) <= 1
        if resets:  # nothing after the reset
            assert theirs[-1] is resets[0]
        ended = [i for i, e in enumerate(theirs) if isinstance(e, InputEnded)]
        assert len(ended) <= 1
        if ended:  # no message after the end of the request
            assert not any(isinstance(e, MessageReceived) for e in theirs[ended[0] :])
    # Every call is over on one side or the other, or still legitimately open on both.
    assert set(pair.client.calls) <= set(sids)
    assert set(pair.server.calls) <= set(sids)
