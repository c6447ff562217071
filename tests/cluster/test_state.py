"""Merge precedence by incarnation (alive / suspect / failed / left) and the member table."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.cluster.state import EVENTS, LIVE, MemberTable, Update, decide
from rpcnet_runtime.cluster.types import (
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
)

A, S, F, L = MemberState.ALIVE, MemberState.SUSPECT, MemberState.FAILED, MemberState.LEFT
U = Update

# (local state, local incarnation, update, update incarnation, next state or None = ignored)
PRECEDENCE = [
    (None, 0, U.ALIVE, 0, A),
    (None, 0, U.SUSPECT, 3, None),
    (None, 0, U.FAILED, 3, None),
    (None, 0, U.LEFT, 3, None),
    (A, 5, U.ALIVE, 4, None),
    (A, 5, U.ALIVE, 5, None),
    (A, 5, U.ALIVE, 6, A),
    (A, 5, U.SUSPECT, 4, None),
    (A, 5, U.SUSPECT, 5, S),
    (A, 5, U.SUSPECT, 6, S),
    (A, 5, U.FAILED, 4, None),
    (A, 5, U.FAILED, 5, F),
    (A, 5, U.LEFT, 5, L),
    (A, 5, U.LEFT, 4, None),
    (S, 5, U.ALIVE, 5, None),  # same incarnation cannot refute
    (S, 5, U.ALIVE, 6, A),
    (S, 5, U.SUSPECT, 5, None),  # a confirmation, not a transition
    (S, 5, U.FAILED, 5, F),
    (S, 5, U.FAILED, 4, None),
    (S, 5, U.LEFT, 6, L),
    (F, 5, U.ALIVE, 5, None),
    (F, 5, U.ALIVE, 6, A),
    (F, 5, U.SUSPECT, 9, None),
    (F, 5, U.FAILED, 9, None),
    (F, 5, U.LEFT, 9, None),
    (L, 5, U.ALIVE, 5, None),
    (L, 5, U.ALIVE, 6, A),
    (L, 5, U.SUSPECT, 9, None),
    (L, 5, U.FAILED, 9, None),
    (L, 5, U.LEFT, 9, None),
]


@pytest.mark.parametrize(("state", "inc", "update", "new_inc", "expected"), PRECEDENCE)
def test_precedence(
    state: MemberState | None, inc: int, update: Update, new_inc: int, expected: MemberState | None
) -> None:
    assert decide(state, inc, update, new_inc) is expected


def test_precedence_table_covers_every_state_and_update() -> None:
    covered = {(row[0], row[2]) for row in PRECEDENCE}
    assert covered == {(s, u) for s in [None, *MemberState] for u in Update}


@pytest.mark.parametrize(
    ("old", "new", "event"),
    [
        (None, A, NodeJoined),
        (L, A, NodeJoined),
        (F, A, NodeRecovered),
        (A, F, NodeFailed),
        (S, F, NodeFailed),
        (A, L, NodeLeft),
        (S, L, NodeLeft),
        (A, S, None),
        (S, A, None),
    ],
)
def test_event_per_transition(
    old: MemberState | None, new: MemberState, event: type[object] | None
) -> None:
    assert EVENTS.get((old, new)) is event


def test_table_reports_each_transition_once() -> None:
    table = MemberTable(max_members=10)
    t = table.apply("b", U.ALIVE, 0, 1.0, address="b:1", tags={"role": "w"})
    assert t is not None and isinstance(t.event, NodeJoined)
    assert t.event.node.tags == {"role": "w"}
    assert table.apply("b", U.ALIVE, 0, 2.0, address="b:1") is None
    t = table.apply("b", U.SUSPECT, 0, 3.0)
    assert t is not None and t.event is None and t.record.state is S
    t = table.apply("b", U.FAILED, 0, 4.0)
    assert t is not None and isinstance(t.event, NodeFailed) and t.record.since == 4.0
    assert table.apply("b", U.FAILED, 0, 5.0) is None
    t = table.apply("b", U.ALIVE, 1, 6.0, address="b:2", tags={"role": "x"})
    assert t is not None and isinstance(t.event, NodeRecovered)
    assert t.event.node.address == "b:2" and t.event.node.incarnation == 1
    assert t.event.node.tags == {"role": "x"}


def test_table_is_bounded() -> None:
    table = MemberTable(max_members=2)
    assert table.apply("a", U.ALIVE, 0, 0.0, address="a:1")
    assert table.apply("b", U.ALIVE, 0, 0.0, address="b:1")
    assert table.apply("c", U.ALIVE, 0, 0.0, address="c:1") is None
    assert table.rejected_full == 1 and len(table) == 2


def test_clear_suspicion_keeps_incarnation() -> None:
    table = MemberTable(max_members=4)
    table.apply("a", U.ALIVE, 0, 0.0, address="a:1")
    table.apply("a", U.SUSPECT, 2, 1.0)
    assert table.clear_suspicion("a", 2.0)
    record = table.require("a")
    assert record.state is A and record.incarnation == 2
    assert not table.clear_suspicion("a", 3.0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([f"m{i}" for i in range(6)]),
            st.sampled_from([*Update, "remove"]),
            st.integers(0, 3),
        ),
        max_size=60,
    )
)
def test_live_index_matches_states(ops: list[tuple[str, Update | str, int]]) -> None:
    table = MemberTable(max_members=100)
    rng = random.Random(0)
    for member, update, inc in ops:
        if update == "remove":
            table.remove(member)
        else:
            assert isinstance(update, Update)
            table.apply(member, update, inc, rng.random(), address=f"{member}:1")
    live = {r.id for r in table if r.state in LIVE}
    assert sorted(table.live) == sorted(live)
