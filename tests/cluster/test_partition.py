"""PartitionDetector: stable membership, quorum with tie-break, debounced events."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpcnet_runtime.cluster.partition import PartitionDetector, quorum
from rpcnet_runtime.cluster.types import PartitionDetected, PartitionHealed

STABLE = 2.0
FIVE = frozenset("abcde")


def ids(text: str) -> frozenset[str]:
    return frozenset(text)


def formed(self_id: str, members: frozenset[str], now: float = 0.0) -> PartitionDetector:
    """A detector whose last stable membership is `members`, all reachable, at `now + STABLE`."""
    det = PartitionDetector(self_id, stable_after=STABLE)
    assert det.observe(members, members, now) == []
    assert det.observe(members, members, now + STABLE) == []
    assert det.last_stable == members
    assert det.has_quorum()
    return det


def hold(
    det: PartitionDetector, alive: frozenset[str], known: frozenset[str], start: float
) -> list[PartitionDetected | PartitionHealed]:
    """Observe a view at `start`, then at each deadline it produces (bounded)."""
    events = det.observe(alive, known, start)
    for _ in range(10):
        deadline = det.next_deadline()
        if deadline is None:
            return events
        assert deadline >= start
        events += det.observe(alive, known, deadline)
    raise AssertionError("detector kept producing deadlines")


# -- forming the last stable membership ------------------------------------------------------------


def test_no_reference_and_quorum_before_the_membership_is_stable() -> None:
    det = PartitionDetector("a", stable_after=STABLE)
    assert det.last_stable == frozenset()
    assert det.has_quorum()
    assert det.next_deadline() is None
    assert det.observe(ids("a"), FIVE, 0.0) == []
    assert det.has_quorum()  # no reference yet: nothing to lose
    assert det.next_deadline() == 0.0 + STABLE


def test_each_member_becomes_stable_after_it_has_been_known_for_stable_after() -> None:
    det = PartitionDetector("a", stable_after=STABLE)
    det.observe(ids("a"), ids("a"), 0.0)
    det.observe(ids("ab"), ids("ab"), 1.5)  # b's clock starts; a's keeps running
    assert det.next_deadline() == 2.0
    det.observe(ids("ab"), ids("ab"), 2.0)
    assert det.last_stable == ids("a")
    assert det.next_deadline() == 3.5
    det.observe(ids("a"), ids("a"), 3.0)  # b gone again before it counted: never stable
    det.observe(ids("a"), ids("a"), 3.5)
    assert det.last_stable == ids("a")
    assert det.next_deadline() is None


def test_churn_does_not_starve_the_stable_set() -> None:
    # A change every second: the whole known set never holds still for STABLE seconds, yet each
    # member enters (or, having left, leaves) the stable set STABLE seconds after its change.
    det = formed("a", ids("abc"))
    for now, known in [(10.0, "abcd"), (10.5, "abd"), (11.0, "abde"), (12.0, "abdef")]:
        assert det.observe(ids(known), ids(known), now) == []
    assert det.last_stable == ids("abcd")  # d was known from 10.0 to 12.0
    assert det.observe(ids("abdefg"), ids("abdefg"), 13.0) == []
    assert det.last_stable == ids("abde")  # c left at 10.5, e joined at 11.0
    assert det.next_deadline() == 14.0  # f
    assert det.has_quorum()


def test_join_grows_the_stable_set() -> None:
    det = formed("a", FIVE)
    assert hold(det, FIVE | {"f"}, FIVE | {"f"}, 10.0) == []
    assert det.last_stable == FIVE | {"f"}


def test_graceful_leave_shrinks_the_stable_set_and_changes_the_quorum_size() -> None:
    det_c = formed("c", FIVE)
    assert hold(det_c, ids("abc"), ids("abc"), 10.0) == []  # d and e left
    assert det_c.last_stable == ids("abc")
    # Now c alone is a minority of 3, and a, b are a majority of 3 (they were not of 5).
    assert hold(det_c, ids("c"), ids("abc"), 20.0) == [
        PartitionDetected(minority=ids("c"), majority=ids("ab"))
    ]
    det_a = formed("a", ids("abc"))
    assert hold(det_a, ids("ab"), ids("abc"), 20.0) == []
    assert det_a.has_quorum()


def test_a_failure_does_not_shrink_the_stable_set() -> None:
    det = formed("a", FIVE)
    events = hold(det, ids("abcd"), FIVE, 10.0)  # e failed but is still known
    events += hold(det, ids("abcd"), FIVE, 1000.0)
    assert events == []
    assert det.last_stable == FIVE
    assert det.has_quorum()


# -- the table of splits ---------------------------------------------------------------------------


def test_five_nodes_isolate_one() -> None:
    isolated = formed("a", FIVE)
    majority = formed("c", FIVE)
    assert isolated.observe(ids("a"), FIVE, 10.0) == []  # not yet: must hold for stable_after
    assert isolated.has_quorum()
    assert isolated.next_deadline() == 10.0 + STABLE
    assert isolated.observe(ids("a"), FIVE, 10.0 + STABLE - 0.001) == []
    assert isolated.observe(ids("a"), FIVE, 10.0 + STABLE) == [
        PartitionDetected(minority=ids("a"), majority=ids("bcde"))
    ]
    assert not isolated.has_quorum()
    assert isolated.next_deadline() is None
    assert isolated.observe(ids("a"), FIVE, 100.0) == []  # exactly one event per transition
    assert hold(majority, ids("bcde"), FIVE, 10.0) == []
    assert majority.has_quorum()


@pytest.mark.parametrize(
    ("stable", "side", "other", "side_has_quorum"),
    [
        ("abcde", "ab", "cde", False),  # 2|3
        ("abcde", "de", "abc", False),
        ("abcde", "ace", "bd", True),
        ("abcd", "ab", "cd", True),  # 2|2: the side holding "a" keeps quorum
        ("abcd", "cd", "ab", False),
        ("abcd", "bc", "ad", False),
        ("abcd", "ad", "bc", True),
        ("abcdef", "bdf", "ace", False),  # 3|3
        ("ab", "a", "b", True),  # 1|1
        ("ab", "b", "a", False),
        ("abcdefg", "abc", "defg", False),
    ],
)
def test_split_seen_from_both_sides(
    stable: str, side: str, other: str, side_has_quorum: bool
) -> None:
    members = ids(stable)
    here = formed(side[0], members)
    there = formed(other[0], members)
    events_here = hold(here, ids(side), members, 10.0)
    events_there = hold(there, ids(other), members, 10.0)
    assert here.has_quorum() is side_has_quorum
    assert there.has_quorum() is not side_has_quorum  # both sides agree who has quorum
    loser_events, loser, winner = (
        (events_there, other, side) if side_has_quorum else (events_here, side, other)
    )
    assert loser_events == [PartitionDetected(minority=ids(loser), majority=ids(winner))]
    assert (events_here if side_has_quorum else events_there) == []


def test_three_way_split_leaves_nobody_with_quorum() -> None:
    for side in ("ab", "cd", "e"):
        det = formed(side[0], FIVE)
        rest = FIVE - ids(side)
        assert hold(det, ids(side), FIVE, 10.0) == [
            PartitionDetected(minority=ids(side), majority=rest)
        ]


# -- flapping, healing, freezing ------------------------------------------------------------------


def test_flapping_link_produces_no_event_storm() -> None:
    det = formed("a", FIVE)
    now = 10.0
    events: list[PartitionDetected | PartitionHealed] = []
    for i in range(100):  # the link to b, c, d flaps every 0.5 s for 50 s
        alive = ids("a") if i % 4 < 2 else FIVE
        events += det.observe(alive, FIVE, now)
        now += 0.5
    assert events == []
    assert det.has_quorum()


def test_flapping_while_partitioned_does_not_heal() -> None:
    det = formed("a", FIVE)
    assert len(hold(det, ids("a"), FIVE, 10.0)) == 1
    now = 20.0
    events: list[PartitionDetected | PartitionHealed] = []
    for i in range(100):
        alive = FIVE if i % 3 == 0 else ids("ab")
        events += det.observe(alive, FIVE, now)
        now += 0.7
    assert events == []
    assert not det.has_quorum()


def test_heal_reports_once_after_the_majority_is_back_for_stable_after() -> None:
    det = formed("a", FIVE)
    assert hold(det, ids("a"), FIVE, 10.0) == [
        PartitionDetected(minority=ids("a"), majority=ids("bcde"))
    ]
    assert det.observe(ids("abc"), FIVE, 20.0) == []
    assert det.has_quorum() is False
    assert det.observe(ids("abc"), FIVE, 20.0 + STABLE) == [PartitionHealed()]
    assert det.has_quorum()
    assert hold(det, FIVE, FIVE, 30.0) == []
    # And a second partition is reported again.
    assert hold(det, ids("ab"), FIVE, 40.0) == [
        PartitionDetected(minority=ids("ab"), majority=ids("cde"))
    ]


def test_stable_set_is_frozen_while_partitioned() -> None:
    det = formed("a", FIVE)
    hold(det, ids("a"), FIVE, 10.0)
    # The membership layer reaps b..e and a newcomer f joins the isolated side.
    assert hold(det, ids("af"), ids("af"), 20.0) == []
    assert det.last_stable == FIVE
    assert not det.has_quorum()
    # After healing, the reference follows the membership again.
    assert hold(det, FIVE | {"f"}, FIVE | {"f"}, 30.0) == [PartitionHealed()]
    assert det.last_stable == FIVE | {"f"}


def test_stable_set_does_not_move_while_a_loss_of_quorum_is_pending() -> None:
    det = formed("a", FIVE)
    det.observe(ids("ab"), FIVE, 10.0)  # quorum loss pending
    det.observe(ids("ab"), ids("ab"), 10.5)  # membership layer reaps c, d, e early
    assert det.observe(ids("ab"), ids("ab"), 12.0) == [
        PartitionDetected(minority=ids("ab"), majority=ids("cde"))
    ]
    assert hold(det, ids("ab"), ids("ab"), 13.0) == []
    assert det.last_stable == FIVE


def test_membership_change_maturing_during_a_pending_loss_does_not_rescue_quorum() -> None:
    det = formed("a", FIVE)
    det.observe(ids("abcd"), ids("abcd"), 10.0)  # e reaped: reference would shrink at 12.0
    det.observe(ids("ab"), ids("abcd"), 11.0)  # c, d unreachable: 2 of 5, loss pending
    # At 12.0 the smaller reference {a,b,c,d} would give a, b quorum by the tie-break; it must
    # not be adopted while the loss is pending.
    assert det.observe(ids("ab"), ids("abcd"), 12.0) == []
    assert det.last_stable == FIVE
    assert det.observe(ids("ab"), ids("abcd"), 13.0) == [
        PartitionDetected(minority=ids("ab"), majority=ids("cde"))
    ]


def test_reap_after_drops_long_unreachable_members_only_with_quorum() -> None:
    det = PartitionDetector("a", stable_after=STABLE, reap_after=10.0)
    det.observe(FIVE, FIVE, 0.0)
    det.observe(FIVE, FIVE, STABLE)
    det.observe(ids("abcd"), FIVE, 10.0)  # e unreachable from 10.0
    assert det.next_deadline() == 20.0
    det.observe(ids("abcd"), FIVE, 19.9)
    assert det.last_stable == FIVE
    det.observe(ids("abcd"), FIVE, 20.0)  # it leaves at once: reap_after >= stable_after
    assert det.last_stable == ids("abcd")
    assert det.next_deadline() is None
    # Partitioned: nothing is reaped however long it lasts.
    assert hold(det, ids("a"), FIVE, 30.0) == [
        PartitionDetected(minority=ids("a"), majority=ids("bcd"))
    ]
    det.observe(ids("a"), FIVE, 1000.0)
    assert det.next_deadline() is None
    assert det.last_stable == ids("abcd")


def test_stable_set_change_can_start_a_partition() -> None:
    # a sees only itself and b; the reference forms around five members: a, b are a minority.
    det = PartitionDetector("a", stable_after=STABLE)
    assert hold(det, ids("ab"), FIVE, 0.0) == [
        PartitionDetected(minority=ids("ab"), majority=ids("cde"))
    ]


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="self_id"):
        PartitionDetector("")
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="stable_after"):
            PartitionDetector("a", stable_after=bad)
    with pytest.raises(ValueError, match="reap_after"):
        PartitionDetector("a", stable_after=2.0, reap_after=1.0)
    with pytest.raises(ValueError, match="reap_after"):
        PartitionDetector("a", reap_after=0.0)
    with pytest.raises(ValueError, match="now"):
        PartitionDetector("a").observe(ids("a"), ids("a"), math.nan)


# -- properties ----------------------------------------------------------------------------------

member_ids = st.frozensets(st.text("abcdefghij", min_size=1, max_size=3), min_size=1, max_size=9)


@settings(max_examples=200, deadline=None)
@given(stable=member_ids, data=st.data())
def test_quorum_exactly_one_of_two_complementary_sides(
    stable: frozenset[str], data: st.DataObject
) -> None:
    side = data.draw(st.frozensets(st.sampled_from(sorted(stable))))
    other = stable - side
    assert quorum(side, stable) != quorum(other, stable)


@settings(max_examples=100, deadline=None)
@given(stable=member_ids.filter(lambda s: len(s) >= 2), data=st.data())
def test_at_most_one_side_of_any_split_claims_quorum(
    stable: frozenset[str], data: st.DataObject
) -> None:
    members = sorted(stable)
    side = data.draw(st.frozensets(st.sampled_from(members), min_size=1, max_size=len(members) - 1))
    other = stable - side
    here = formed(min(side), stable)
    there = formed(min(other), stable)
    events_here = hold(here, side, stable, 10.0)
    events_there = hold(there, other, stable, 10.0)
    assert not (here.has_quorum() and there.has_quorum())
    assert here.has_quorum() or there.has_quorum()  # a two-way split always leaves one side
    for det, events, mine, theirs in (
        (here, events_here, side, other),
        (there, events_there, other, side),
    ):
        expected = [] if det.has_quorum() else [PartitionDetected(minority=mine, majority=theirs)]
        assert events == expected


@settings(max_examples=100, deadline=None)
@given(gaps=st.lists(st.floats(0.01, STABLE * 0.99), min_size=1, max_size=60))
def test_changes_shorter_than_stable_after_never_produce_events(gaps: list[float]) -> None:
    det = formed("a", FIVE)
    now = 10.0
    for i, gap in enumerate(gaps):
        alive = ids("ab") if i % 2 == 0 else FIVE
        assert det.observe(alive, FIVE, now) == []
        now += gap
    assert det.observe(FIVE, FIVE, now) == []
    assert det.has_quorum()
