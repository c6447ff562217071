"""SwimNode on the in-memory network with virtual time, and hand-driven protocol exchanges."""

from __future__ import annotations

import random
from collections import Counter

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.cluster import (
    ClusterConfig,
    Member,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    PartitionDetected,
    PartitionHealed,
    SwimNode,
)
from rpcnet_runtime.cluster.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    MemberSnapshot,
    Message,
    MessageError,
    Nack,
    Ping,
    PushPull,
    Suspect,
    decode_packet,
    encode_packet,
)
from rpcnet_runtime.testing import MockNetwork, NoRouteError, SimulatedCluster

LAN = ClusterConfig.lan()


def addr(i: int) -> str:
    return f"node{i}:7946"


def events_of(c: SimulatedCluster, kind: type[object]) -> list[tuple[str, float, object]]:
    return [(a, t, e) for a, log in c.events.items() for t, e in log if isinstance(e, kind)]


# -- joining, failing, leaving ------------------------------------------------------------------


def test_join_through_a_seed_reports_each_member_once() -> None:
    c = SimulatedCluster(LAN, 5, seed=3, bootstrap=False)
    for i in range(1, 5):
        c.join(addr(i), [addr(0)])
    c.run_for(3.0)
    for node in c.nodes.values():
        assert node.joined or node.id == "n0"
        states = {m.id: m.state for m in node.members()}
        assert states == {f"n{i}": MemberState.ALIVE for i in range(5)}
    joined = Counter((a, e.node.id) for a, _, e in events_of(c, NodeJoined))  # type: ignore[attr-defined]
    assert set(joined.values()) == {1}
    assert len(joined) == 5 * 4
    assert not events_of(c, NodeFailed)


def test_join_retries_until_a_seed_answers() -> None:
    c = SimulatedCluster(LAN, 2, seed=4, bootstrap=False)
    c.network.set_link(addr(1), addr(0), cut=True)
    c.join(addr(1), [addr(0), "nowhere:1"])
    c.run_for(2.0)
    assert not c.nodes[addr(1)].joined
    c.network.reset_links()
    c.run_for(1.0)
    assert c.nodes[addr(1)].joined
    assert c.nodes[addr(0)].member("n1") is not None
    assert c.no_route > 0  # "nowhere:1" has no listener


@pytest.mark.parametrize("seed", range(5))
def test_killed_node_is_reported_failed_by_every_survivor_within_3s(seed: int) -> None:
    c = SimulatedCluster(LAN, 5, seed=seed)
    c.run_for(2.0)
    c.kill(addr(2))
    t0 = c.clock.now()
    c.run_for(3.0)
    failed = events_of(c, NodeFailed)
    assert sorted(a for a, _, _ in failed) == sorted(addr(i) for i in (0, 1, 3, 4))
    assert all(e.node.id == "n2" and t - t0 < 3.0 for _, t, e in failed)  # type: ignore[attr-defined]
    for i in (0, 1, 3, 4):
        member = c.nodes[addr(i)].member("n2")
        assert member is not None and member.state is MemberState.FAILED
    c.run_for(5.0)
    assert len(events_of(c, NodeFailed)) == 4  # exactly once per observer


def test_graceful_leave_is_reported_as_left_not_failed() -> None:
    c = SimulatedCluster(LAN, 5, seed=5)
    c.run_for(1.0)
    leaver = c.nodes[addr(3)]
    c.leave(addr(3))
    c.run_for(0.5)
    c.kill(addr(3))
    c.run_for(5.0)
    left = events_of(c, NodeLeft)
    assert sorted(a for a, _, _ in left) == sorted(addr(i) for i in (0, 1, 2, 4))
    assert not events_of(c, NodeFailed)
    assert c.nodes[addr(0)].member("n3").state is MemberState.LEFT  # type: ignore[union-attr]
    assert leaver.leaving and leaver.members()[0].state is MemberState.LEFT


def test_restarted_node_with_new_id_at_same_address() -> None:
    c = SimulatedCluster(LAN, 5, seed=6)
    c.run_for(1.0)
    c.kill(addr(4))
    c.run_for(4.0)
    assert len(events_of(c, NodeFailed)) == 4
    c.add_node("n4-restarted", addr(4))
    c.join(addr(4), [addr(0)])
    c.run_for(3.0)
    joined = [(a, e.node.id) for a, _, e in events_of(c, NodeJoined)]  # type: ignore[attr-defined]
    assert sorted(a for a, nid in joined if nid == "n4-restarted") == [addr(i) for i in range(4)]
    for i in range(4):
        assert c.nodes[addr(i)].member("n4") is None  # the dead incarnation was forgotten
        assert c.nodes[addr(i)].member("n4-restarted").state is MemberState.ALIVE  # type: ignore[union-attr]
    assert len(events_of(c, NodeFailed)) == 4


def test_fast_restart_old_id_fails_and_is_reaped() -> None:
    c = SimulatedCluster(LAN, 5, seed=13)
    c.run_for(1.0)
    c.kill(addr(4))
    c.add_node("n4-new", addr(4))  # restarted before anyone noticed the crash
    c.join(addr(4), [addr(0)])
    t0 = c.clock.now()
    c.run_for(6.0)
    for i in range(4):
        node = c.nodes[addr(i)]
        assert node.member("n4") is None  # failed (misdirected pings go unanswered), then reaped
        assert node.member("n4-new").state is MemberState.ALIVE  # type: ignore[union-attr]
    failed = Counter((a, e.node.id) for a, _, e in events_of(c, NodeFailed))  # type: ignore[attr-defined]
    assert failed == Counter({(addr(i), "n4"): 1 for i in range(4)})
    # The new process announced its predecessor's death: no suspicion timeout to wait for.
    assert all(t - t0 < 0.5 for _, t, _ in events_of(c, NodeFailed))


def test_node_declared_failed_refutes_and_recovers() -> None:
    c = SimulatedCluster(LAN, 5, seed=7)
    c.run_for(1.0)
    c.pause(addr(1))
    c.run_for(5.0)
    assert len(events_of(c, NodeFailed)) == 4
    c.resume(addr(1))
    t0 = c.clock.now()
    c.run_for(3.0)
    recovered = events_of(c, NodeRecovered)
    assert sorted(a for a, _, _ in recovered) == sorted(addr(i) for i in (0, 2, 3, 4))
    assert all(t - t0 < 2.0 for _, t, _ in recovered)
    node = c.nodes[addr(1)]
    assert node.incarnation > 0 and node.counters.refutations >= 1
    for i in (0, 2, 3, 4):
        member = c.nodes[addr(i)].member("n1")
        assert member is not None and member.state is MemberState.ALIVE
        assert member.incarnation == node.incarnation


@pytest.mark.parametrize("seed", range(4))
def test_one_second_pause_gives_no_false_failure(seed: int) -> None:
    c = SimulatedCluster(LAN, 5, seed=seed)
    c.run_for(2.0)
    c.pause(addr(0))
    c.run_for(1.0)
    c.resume(addr(0))
    c.run_for(6.0)
    assert not events_of(c, NodeFailed)
    assert c.nodes[addr(0)].counters.refutations >= 1  # it was suspected, and refuted


def test_stalled_node_does_not_act_on_timers_that_expired_while_it_was_stopped() -> None:
    c = SimulatedCluster(LAN, 5, seed=12)
    c.run_for(1.0)
    node = c.nodes[addr(0)]
    # node0 alone heard that n1 is suspected, then froze for longer than the suspicion lasts.
    node.receive(addr(2), encode_packet("n2", [Suspect("n1", 0, "n2")]), c.clock.now())
    c.pause(addr(0))
    c.run_for(LAN.suspicion_max(5) + 0.5)
    c.resume(addr(0), timers_first=True)  # the event loop runs its timers before reading
    c.run_for(5.0)
    assert [e.node.id for a, _, e in events_of(c, NodeFailed) if a == addr(0)] == []  # type: ignore[attr-defined]
    assert node.member("n1").state is MemberState.ALIVE  # type: ignore[union-attr]
    assert node.counters.stalls == 1


def test_no_false_failure_under_ten_percent_loss() -> None:
    c = SimulatedCluster(LAN, 5, seed=8, drop=0.1)
    c.run_for(120.0)
    assert not events_of(c, NodeFailed)
    assert not events_of(c, PartitionDetected)
    assert c.network.dropped > 0


def test_indirect_probes_route_around_a_broken_link() -> None:
    c = SimulatedCluster(LAN, 5, seed=9)
    c.network.set_link(addr(0), addr(1), cut=True)
    c.run_for(20.0)
    assert not events_of(c, NodeFailed)
    assert c.nodes[addr(0)].counters.refutations == 0
    assert c.nodes[addr(1)].counters.refutations == 0
    assert c.nodes[addr(0)].member("n1").state is MemberState.ALIVE  # type: ignore[union-attr]


def test_tags_update_reaches_everyone_without_events() -> None:
    c = SimulatedCluster(LAN, 5, seed=10)
    c.run_for(1.0)
    c.update_tags(addr(2), {"role": "worker", "zone": "b"})
    c.run_for(1.0)
    for i in range(5):
        m = c.nodes[addr(i)].member("n2")
        assert m is not None and dict(m.tags) == {"role": "worker", "zone": "b"}
        assert m.incarnation == 1
    assert all(not log for log in c.events.values())
    with pytest.raises(ValueError):
        c.nodes[addr(2)].update_tags({"x" * 300: "y"}, c.clock.now())


# -- Lifeguard, partitions ----------------------------------------------------------------------


def test_isolated_node_detects_partition_and_heals() -> None:
    c = SimulatedCluster(LAN, 5, seed=11)
    c.run_for(3.0)
    others = [addr(i) for i in range(1, 5)]
    c.network.partition([addr(0)], others)
    t0 = c.clock.now()
    c.run_for(5.0)
    detected = events_of(c, PartitionDetected)
    assert [(a, e.minority) for a, _, e in detected] == [(addr(0), frozenset({"n0"}))]  # type: ignore[attr-defined]
    assert detected[0][1] - t0 < 5.0
    assert not c.nodes[addr(0)].has_quorum()
    assert all(c.nodes[a].has_quorum() for a in others)
    assert c.nodes[addr(0)].awareness > 0  # Lifeguard: it blames itself and slows down
    c.run_for(5.0)
    c.network.heal()
    t1 = c.clock.now()
    c.run_for(3.0)
    healed = events_of(c, PartitionHealed)
    assert [a for a, _, _ in healed] == [addr(0)] and healed[0][1] - t1 < 3.0
    for node in c.nodes.values():
        assert {m.state for m in node.members()} == {MemberState.ALIVE}
        assert node.has_quorum()


# -- hand-driven exchanges ----------------------------------------------------------------------


def _node(node_id: str = "a", peers: tuple[str, ...] = ("b", "c", "d")) -> SwimNode:
    node = SwimNode(LAN, node_id, f"{node_id}:1", rng=random.Random(1), now=0.0)
    node.seed_members([Member(p, f"{p}:1") for p in peers], 0.0)
    return node


def _packets(node: SwimNode) -> list[tuple[str, list[Message]]]:
    return [
        (a, list(decode_packet(d, max_bytes=1 << 20).messages)) for a, d in node.take_outgoing()
    ]


def _run_answering(node: SwimNode, until: float, answer: set[str]) -> float:
    """Drive `node` to `until`, acking (bare, no piggyback) every ping to a member in `answer`."""
    now = 0.0
    for _ in range(10_000):
        deadline = node.next_deadline()
        if deadline is None or deadline > until:
            break
        now = max(now, deadline)
        node.tick(now)
        for address, messages in _packets(node):
            peer = address.split(":")[0]
            for m in messages:
                if isinstance(m, Ping) and peer in answer:
                    node.receive(address, encode_packet(peer, [Ack(m.seq)]), now + 0.001)
    return until


def test_buddy_system_and_answered_probe_clears_suspicion() -> None:
    a = _node()
    a.receive("c:1", encode_packet("c", [Suspect("b", 0, "c")]), 0.0)
    assert a.member("b").state is MemberState.SUSPECT  # type: ignore[union-attr]
    # The suspect is probed next (small cluster), and the probe carries the suspicion.
    seen: list[list[Message]] = []
    now = 0.0
    for _ in range(50):
        now = a.next_deadline() or now
        a.tick(now)
        seen = [ms for address, ms in _packets(a) if address == "b:1"]
        if seen:
            break
    ping = seen[0][0]
    assert isinstance(ping, Ping) and ping.target_id == "b"
    assert Suspect("b", 0, "a") in seen[0]
    # b answers, but its refutation is lost: the bare ack clears the suspicion anyway.
    a.receive("b:1", encode_packet("b", [Ack(ping.seq)]), now + 0.001)
    assert a.member("b").state is MemberState.ALIVE  # type: ignore[union-attr]
    assert a.counters.suspicions_cleared == 1
    # Someone else's suspicion expired into Dead: b answered us recently, so it is only suspected.
    a.receive("c:1", encode_packet("c", [Dead("b", 0, "c")]), now + 0.5)
    assert a.member("b").state is MemberState.SUSPECT  # type: ignore[union-attr]
    assert a.counters.dead_downgraded == 1
    _run_answering(a, 20.0, answer={"b", "c", "d"})
    assert not [e for e in a.take_events() if isinstance(e, NodeFailed)]
    assert a.member("b").state is MemberState.ALIVE  # type: ignore[union-attr]


def test_unanswered_suspect_is_declared_failed_once() -> None:
    a = _node()
    a.receive("c:1", encode_packet("c", [Suspect("b", 0, "c")]), 0.0)
    _run_answering(a, 10.0, answer={"c", "d"})
    failed = [e for e in a.take_events() if isinstance(e, NodeFailed)]
    assert [e.node.id for e in failed] == ["b"]
    # Dead is only downgraded on recent direct evidence; here there was none.
    assert a.counters.dead_downgraded == 0


def test_suspect_refutes_on_the_ack() -> None:
    b = _node("b", ("a", "c", "d"))
    b.take_outgoing()
    b.receive("a:1", encode_packet("a", [Ping(7, "b", "a:1"), Suspect("b", 0, "a")]), 1.0)
    assert b.incarnation == 1 and b.counters.refutations == 1
    [(address, messages)] = _packets(b)
    assert address == "a:1" and messages[0] == Ack(7)
    assert Alive("b", 1, "b:1", {}) in messages
    # A stale suspicion (older incarnation) re-gossips the current Alive instead of refuting.
    for _ in range(20):
        b.tick(b.next_deadline() or 1.0)
    b.take_outgoing()
    b.receive("c:1", encode_packet("c", [Ping(8, "b", "c:1"), Suspect("b", 0, "c")]), 9.0)
    [(address, messages)] = _packets(b)
    assert messages[0] == Ack(8) and Alive("b", 1, "b:1", {}) in messages
    assert b.incarnation == 1


def test_indirect_ping_relays_ack_or_nacks() -> None:
    r = _node("r", ("a", "t"))
    r.take_outgoing()
    r.receive("a:1", encode_packet("a", [IndirectPing(5, "t", "t:1", "a:1", True)]), 1.0)
    [(address, [ping, *_])] = _packets(r)
    assert address == "t:1" and isinstance(ping, Ping) and ping.source_address == "r:1"
    r.receive("t:1", encode_packet("t", [Ack(ping.seq)]), 1.01)
    assert [(a, ms[0]) for a, ms in _packets(r)] == [("a:1", Ack(5))]
    # Without an ack, a nack goes back to the origin before its probe period ends.
    r.receive("a:1", encode_packet("a", [IndirectPing(6, "t", "t:1", "a:1", True)]), 2.0)
    r.take_outgoing()
    r.tick(2.0 + LAN.probe_timeout)
    sent = [(a, ms[0]) for a, ms in _packets(r)]
    assert ("a:1", Nack(6)) in sent


def test_ack_forwarded_by_relay() -> None:
    r = _node("r", ("a", "t"))
    r.take_outgoing()
    r.receive("a:1", encode_packet("a", [IndirectPing(5, "t", "t:1", "a:1", False)]), 1.0)
    [(_, [ping, *_])] = _packets(r)
    assert isinstance(ping, Ping)
    r.receive("t:1", encode_packet("t", [Ack(ping.seq)]), 1.01)
    assert [(a, ms[0]) for a, ms in _packets(r)] == [("a:1", Ack(5))]


def test_misdirected_ping_is_not_answered() -> None:
    b = _node("b", ("a", "c", "d"))  # a known sender (an unknown one is synced with)
    b.take_outgoing()
    b.receive("a:1", encode_packet("a", [Ping(1, "old-id", "a:1")]), 1.0)
    assert b.take_outgoing() == [] and b.counters.misdirected == 1


def test_push_pull_merges_and_answers_with_state() -> None:
    a = _node("a", ("b",))
    a.take_outgoing()
    states = (
        MemberSnapshot("x", "x:1", {"role": "w"}, MemberState.ALIVE, 2),
        MemberSnapshot("a", "a:1", {}, MemberState.FAILED, 0),  # we are "failed" there: refute
        MemberSnapshot("b", "b:1", {}, MemberState.LEFT, 0),
        MemberSnapshot("ghost", "g:1", {}, MemberState.FAILED, 0),  # unknown failed: ignored
    )
    a.receive("x:1", encode_packet("x", [PushPull(states, "x:1", join=True)]), 1.0)
    assert a.member("x").tags == {"role": "w"}  # type: ignore[union-attr]
    assert a.member("b").state is MemberState.LEFT  # type: ignore[union-attr]
    assert a.member("ghost") is None
    assert a.incarnation == 1
    [(address, [reply])] = _packets(a)
    assert address == "x:1" and isinstance(reply, PushPull) and reply.is_response
    mine = {s.node_id: s for s in reply.states}
    assert mine["a"].incarnation == 1 and mine["a"].state is MemberState.ALIVE
    assert [type(e) for e in a.take_events()] == [NodeJoined, NodeLeft]


def test_phi_view() -> None:
    a = _node()
    assert a.phi("b", 5.0) == 0.0  # never heard from
    for t in (1.0, 1.5, 2.0, 2.5, 3.0):
        a.receive("b:1", encode_packet("b", [Ack(0)]), t)
    assert a.phi("b", 3.2) < a.phi("b", 4.0) < a.phi("b", 6.0)
    a.receive("c:1", encode_packet("c", [Dead("b", 0, "c")]), 7.0)
    assert a.phi("b", 7.0) == float("inf")


def test_silent_member_is_probed_first_when_phi_crosses_threshold() -> None:
    a = _node("a", tuple(f"p{i}" for i in range(20)))
    for t in [0.1 * k for k in range(1, 30)]:
        a.receive("p7:1", encode_packet("p7", [Ack(0)]), t)
    # p7 talked every 100 ms and fell silent; the next probe goes to it, not round robin.
    late = 2.9 + 5.0
    assert a.phi("p7", late) > LAN.phi_threshold
    a.tick(late)
    targets = [ms[0].target_id for _, ms in _packets(a) if isinstance(ms[0], Ping)]
    assert targets == ["p7"]


# -- malformed input ---------------------------------------------------------------------------

BAD = [
    b"",
    b"\xc1",
    b"not msgpack at all",
    msgpack.packb([2, "x", []]),
    msgpack.packb([1, "x"]),
    msgpack.packb([1, "", []]),
    msgpack.packb([1, "x", [[99, 1]]]),
    msgpack.packb([1, "x", [[1, "seq", "b", "x:1"]]]),
    msgpack.packb([1, "x", [[1, -1, "b", "x:1"]]]),
    msgpack.packb([1, "x", [[1, 1, "b"]]]),
    msgpack.packb([1, "x", [[5, "x", 1, "x:1", {"k": 1}]]]),
    msgpack.packb([1, "x", [[5, "x" * 300, 1, "x:1", {}]]]),
    msgpack.packb([1, "x", [[8, [["x", "x:1", {}, 9, 0]], "x:1", False, False]]]),
    msgpack.packb([1, "x", [[3, True]]]),
    msgpack.packb({"a": 1}),
    msgpack.packb([1, "a", [[3, 1]]]),  # claims to come from ourselves
]


@pytest.mark.parametrize("data", BAD)
def test_malformed_packets_are_counted_and_dropped(data: bytes) -> None:
    a = _node()
    a.take_outgoing()
    a.receive("x:1", data, 1.0)
    assert a.counters.malformed == 1
    assert a.take_outgoing() == [] and a.take_events() == []


def test_oversized_packet_dropped_unread() -> None:
    small = ClusterConfig(max_message_bytes=2048)
    a = SwimNode(small, "a", "a:1", rng=random.Random(0), now=0.0)
    a.receive("x:1", b"\x00" * 4096, 1.0)
    assert a.counters.oversized == 1
    with pytest.raises(MessageError):
        decode_packet(b"\x00" * 4096, max_bytes=2048)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    a = _node()
    a.receive("x:1", data, 1.0)


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2**64 - 1)
    | st.text(max_size=5)
    | st.binary(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(1, 9), st.lists(_values, max_size=6)), max_size=4))
def test_structured_garbage_never_raises(raw: list[tuple[int, list[object]]]) -> None:
    a = _node()
    data = msgpack.packb([1, "x", [[kind, *fields] for kind, fields in raw]], use_bin_type=True)
    a.receive("x:1", data, 1.0)
    a.take_outgoing()
    a.receive("x:1", encode_packet("x", [Ping(42, "a", "x:1")]), 1.1)  # still answers
    # (and the unknown sender x may be sent our state, see test_swim_unknown_sender.py)
    answers = [ms[0] for _, ms in _packets(a)]
    assert [m for m in answers if not isinstance(m, PushPull)] == [Ack(42)]


MESSAGES: list[Message] = [
    Ping(1, "b", "a:1"),
    IndirectPing(2, "c", "c:1", "a:1", False),
    Ack(3),
    Nack(4),
    Alive("b", 5, "b:1", {"role": "w"}),
    Suspect("b", 6, "c"),
    Dead("b", 7, "b"),
    PushPull((MemberSnapshot("b", "b:1", {"k": "v"}, MemberState.SUSPECT, 8),), "a:1", True, True),
]


def test_every_message_round_trips() -> None:
    packet = decode_packet(encode_packet("a", MESSAGES), max_bytes=1 << 16)
    assert packet.sender_id == "a" and list(packet.messages) == MESSAGES


# -- config and fakes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"probe_interval": 0.0},
        {"probe_timeout": 0.3},  # not shorter than the interval
        {"indirect_checks": -1},
        {"retransmit_mult": 0},
        {"phi_threshold": float("nan")},
        {"packet_budget": 10},
        {"seeds": [""]},
        {"tags": {"k": 1}},
        {"suspicion_mult": True},
        {"partition_reap_after": 1.0},  # shorter than partition_stable_after
        {"failed_member_reap_after": 0.0},
    ],
)
def test_config_validation(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ClusterConfig(**change)  # type: ignore[arg-type]


def test_config_presets_and_derived_figures() -> None:
    lan, local = ClusterConfig.lan(), ClusterConfig.local()
    assert lan == ClusterConfig()
    assert local.probe_interval < lan.probe_interval < ClusterConfig.wan().probe_interval
    assert ClusterConfig.local(gossip_fanout=5).gossip_fanout == 5
    assert lan.suspicion_min(5) == pytest.approx(1.2)  # survives a 1 s pause
    assert lan.suspicion_min(1000) == pytest.approx(3.6)
    assert lan.suspicion_max(5) == pytest.approx(3.6)
    assert lan.expected_confirmations(5) == 3 and lan.expected_confirmations(4) == 0
    assert lan.push_pull_interval_for(32) == 30.0 and lan.push_pull_interval_for(1000) == 180.0
    assert lan.reconnect_interval_for(5) == 0.5 and lan.reconnect_interval_for(80) == 5.0
    cfg = ClusterConfig(seeds=["h:1"], tags={"role": "w"})
    assert cfg.seeds == ("h:1",) and cfg.with_(probe_timeout=0.05).probe_timeout == 0.05


def test_mock_network_knobs() -> None:
    net = MockNetwork(rng=random.Random(0), delay=0.01)
    net.attach("a")
    net.attach("b")
    with pytest.raises(NoRouteError):
        net.send("a", "c", b"x", 0.0)
    net.send("a", "b", b"1", 0.0)
    net.set_link("a", "b", delay=0.5)
    net.send("a", "b", b"2", 0.0)
    net.partition(["a"], ["b"])
    net.send("a", "b", b"3", 0.0)
    net.heal()
    net.set_link("a", "b", drop=1.0)
    net.send("b", "a", b"4", 0.0)
    assert net.next_delivery() == 0.01
    assert net.pop() == (0.01, "a", "b", b"1")
    assert net.pop() == (0.5, "a", "b", b"2")
    assert net.pop() is None and net.dropped == 2


# -- probe bookkeeping -------------------------------------------------------------------------


def test_probe_order_visits_every_member_once_per_round_priority_first() -> None:
    from rpcnet_runtime.cluster.probing import ProbeOrder

    live = [f"m{i}" for i in range(10)]
    order = ProbeOrder(random.Random(0))
    first = [order.next(live, lambda m: True) for _ in range(10)]
    assert sorted(first) == live  # type: ignore[type-var]
    order.prioritise("m3")
    order.prioritise("m3")
    order.insert("new")
    second = [order.next([*live, "new"], lambda m: m != "m5") for _ in range(12)]
    # Priority first, then the newcomer (inserted in what was left of the round), then a new
    # round over the live members, skipping the one no longer probeable.
    assert second[:2] == ["m3", "new"]
    assert sorted(second[2:]) == sorted(m for m in [*live, "new"] if m != "m5")  # type: ignore[type-var]
    assert ProbeOrder(random.Random(0)).next([], lambda m: True) is None


def test_relays_are_bounded_and_expire() -> None:
    from rpcnet_runtime.cluster.probing import Relay, Relays

    relays = Relays(limit=2)
    for seq in range(3):
        relays.add(seq, Relay("o:1", seq, deadline=float(seq), nack=True))
    assert len(relays) == 2 and relays.pop(0) is None  # the oldest made room
    assert relays.next_deadline() == 1.0
    assert [r.origin_seq for r in relays.expire(1.5)] == [1]
    assert relays.pop(2) is not None and relays.next_deadline() is None


# -- churn: failed members are reaped from the table and the stable membership -----------------


def _churn(
    config: ClusterConfig, rounds: int, seed: int, detect: float = 4.0, settle: float = 6.0
) -> SimulatedCluster:
    """5 nodes; each round kills one and starts a replacement with a new id and address
    `detect` seconds later, then lets it settle for `settle` seconds."""
    c = SimulatedCluster(config, 5, seed=seed)
    c.run_for(3.0)
    live = [addr(i) for i in range(5)]
    for k in range(rounds):
        victim = live.pop(0)
        c.kill(victim)
        c.run_for(detect)
        new = f"repl{k}:7946"
        c.add_node(f"r{k}", new)
        c.join(new, [live[0]])
        live.append(new)
        c.run_for(settle)
    return c


@pytest.mark.parametrize(
    ("seed", "detect", "settle"), [(21, 4.0, 6.0), (23, 2.5, 1.5), (24, 2.5, 1.5)]
)
def test_kill_and_replace_churn_gives_no_false_partition(
    seed: int, detect: float, settle: float
) -> None:
    # 2.5 s + 1.5 s is the benchmark's pace (a kill every ~4 s); memberlist-style reaping of
    # the table alone (30 s) would leave up to 8 dead members in the stable set.
    c = _churn(LAN, 8, seed, detect, settle)
    assert events_of(c, PartitionDetected) == []
    survivors = c.alive()
    ids = {n.id for n in survivors}
    assert ids == {"r3", "r4", "r5", "r6", "r7"}
    c.run_for(LAN.failed_member_reap_after + 2 * LAN.partition_stable_after)
    for node in survivors:
        assert node.has_quorum()
        # The table after reaping: only the live members, every old record gone.
        assert {(m.id, m.state) for m in node.members()} == {(i, MemberState.ALIVE) for i in ids}
        assert node.stable_members == ids
    # Every survivor that saw a member fail reported it once; none reported a reaped one again.
    failed = Counter((a, e.node.id) for a, _, e in events_of(c, NodeFailed))  # type: ignore[attr-defined]
    assert max(failed.values()) == 1


def test_without_reaping_churn_would_report_a_false_partition() -> None:
    # The same churn with reaping pushed out of reach shows what the reap delay prevents.
    config = LAN.with_(failed_member_reap_after=10_000.0, partition_reap_after=10_000.0)
    c = _churn(config, 6, 21)
    assert events_of(c, PartitionDetected) != []


def test_isolated_node_after_churn_detects_partition_and_keeps_the_majority() -> None:
    c = _churn(LAN, 8, 22)
    c.run_for(LAN.failed_member_reap_after + 2.0)
    isolated = c.alive()[0]
    others = [n.address for n in c.alive()[1:]]
    c.network.partition([isolated.address], others)
    t0 = c.clock.now()
    c.run_for(5.0)
    detected = events_of(c, PartitionDetected)
    assert [(a, e.minority) for a, _, e in detected] == [  # type: ignore[attr-defined]
        (isolated.address, frozenset({isolated.id}))
    ]
    assert detected[0][1] - t0 < 5.0
    # Stay cut off well past the reap delay: the minority reaps nothing and its stable set is
    # frozen; the majority reaps the isolated node and keeps quorum.
    c.run_for(LAN.failed_member_reap_after + 5.0)
    majority_ids = {c.nodes[a].id for a in others}
    assert {(m.id, m.state) for m in isolated.members()[1:]} == {
        (i, MemberState.FAILED) for i in majority_ids
    }
    assert isolated.stable_members == majority_ids | {isolated.id}
    assert not isolated.has_quorum()
    for a in others:
        node = c.nodes[a]
        assert node.member(isolated.id) is None
        assert node.stable_members == majority_ids
        assert node.has_quorum()
    assert len(events_of(c, PartitionDetected)) == 1
    # Heal: the isolated node reconnects; the majority, which reaped it, reports NodeJoined.
    c.network.heal()
    t1 = c.clock.now()
    c.run_for(4.0)
    healed = events_of(c, PartitionHealed)
    assert [a for a, _, _ in healed] == [isolated.address] and healed[0][1] - t1 < 3.5
    rejoined = [(a, e.node.id) for a, t, e in events_of(c, NodeJoined) if t >= t1]  # type: ignore[attr-defined]
    assert sorted(rejoined) == sorted((a, isolated.id) for a in others)
    recovered = {e.node.id for _, t, e in events_of(c, NodeRecovered) if t >= t1}  # type: ignore[attr-defined]
    assert recovered == majority_ids  # the isolated node still held them, as FAILED
    for node in c.alive():
        assert {m.state for m in node.members()} == {MemberState.ALIVE}
        assert len(node.members()) == 5
