"""The idempotency store: repeats, waiting, conflicts, hedges, bounds and expiry."""

from __future__ import annotations

import asyncio

import pytest
from policy_vclock import VirtualClock

from rpcnet_runtime.errors import RpcError
from rpcnet_runtime.policies import (
    ClaimKind,
    InMemoryIdempotencyStore,
    PolicyCounters,
    request_fingerprint,
)
from rpcnet_runtime.status import Status

FP = request_fingerprint("p.S/M", b"request-1")
FP2 = request_fingerprint("p.S/M", b"request-2")


def make(clock: VirtualClock | None = None, **kwargs: int | float) -> InMemoryIdempotencyStore:
    return InMemoryIdempotencyStore(clock=clock or VirtualClock(), **kwargs)  # type: ignore[arg-type]


def test_fingerprint_depends_on_method_and_payload() -> None:
    assert request_fingerprint("p.S/M", b"request-1") == FP
    assert FP != FP2 != request_fingerprint("p.S/N", b"request-1")


async def test_repeat_returns_the_stored_result_without_running() -> None:
    store = make()
    first = await store.begin("k", FP)
    assert first.kind is ClaimKind.RUN
    await store.complete(first, b"reply")
    repeat = await store.begin("k", FP)
    assert repeat.kind is ClaimKind.STORED and repeat.result == b"reply"
    assert store.counters.dedupe_hits == 1


async def test_same_key_different_request_conflicts() -> None:
    store = make()
    claim = await store.begin("k", FP)
    other = await store.begin("k", FP2)
    assert other.kind is ClaimKind.CONFLICT
    error = other.error()
    assert isinstance(error, RpcError) and error.status is Status.FAILED_PRECONDITION
    await store.complete(claim, b"x")
    assert (await store.begin("k", FP2)).kind is ClaimKind.CONFLICT
    assert store.counters.dedupe_conflicts == 2


async def test_concurrent_repeat_waits_for_the_first_result() -> None:
    clock = VirtualClock()
    store = make(clock)
    runs: list[str] = []

    async def serve(name: str, delay: float) -> bytes:
        claim = await store.begin("k", FP)
        if claim.kind is ClaimKind.WAIT:
            claim = await store.wait(claim)
        if claim.kind is ClaimKind.STORED:
            assert claim.result is not None
            return claim.result
        assert claim.kind is ClaimKind.RUN
        runs.append(name)
        await clock.sleep(delay)
        await store.complete(claim, f"reply-{name}".encode())
        return f"reply-{name}".encode()

    async def main() -> list[bytes]:
        first = asyncio.ensure_future(serve("first", 1.0))
        await clock.sleep(0.1)
        return list(await asyncio.gather(first, serve("second", 0.0), serve("third", 0.0)))

    assert await clock.run(main()) == [b"reply-first"] * 3
    assert runs == ["first"]
    assert store.counters.dedupe_waits == 2


async def test_abandon_lets_a_waiter_take_over() -> None:
    clock = VirtualClock()
    store = make(clock)
    owner = await store.begin("k", FP)

    async def main() -> list[ClaimKind]:
        waiters = [asyncio.ensure_future(store.wait(await store.begin("k", FP))) for _ in range(2)]
        await clock.sleep(1.0)
        await store.abandon(owner)  # a transient failure: the next one runs it again
        await clock.sleep(0.5)
        took_over = [w.result() for w in waiters if w.done()]
        assert [c.kind for c in took_over] == [ClaimKind.RUN]
        await store.complete(took_over[0], b"second try")
        results = await asyncio.gather(*waiters)
        return [c.kind for c in results]

    kinds = await clock.run(main())
    assert sorted(k.value for k in kinds) == ["run", "stored"]


async def test_abandon_without_waiters_forgets_the_key() -> None:
    store = make()
    claim = await store.begin("k", FP)
    await store.abandon(claim)
    assert len(store) == 0
    assert (await store.begin("k", FP2)).kind is ClaimKind.RUN  # free for any request now


async def test_hedges_run_side_by_side_and_the_first_completion_is_stored() -> None:
    store = make()
    first = await store.begin("k", FP)
    hedge = await store.begin("k", FP, is_hedge=True)
    assert hedge.kind is ClaimKind.RUN and hedge.token != first.token
    await store.complete(hedge, b"hedge wins")
    await store.complete(first, b"late")  # ignored
    stored = await store.begin("k", FP)
    assert stored.result == b"hedge wins"


async def test_abandoning_one_hedge_keeps_the_other_running() -> None:
    store = make()
    first = await store.begin("k", FP)
    hedge = await store.begin("k", FP, is_hedge=True)
    await store.abandon(first)
    assert (await store.begin("k", FP)).kind is ClaimKind.WAIT  # the hedge still runs
    await store.complete(hedge, b"ok")
    assert (await store.begin("k", FP)).result == b"ok"


async def test_lru_eviction_by_entries() -> None:
    store = make(max_entries=2)
    for key in ("a", "b"):
        await store.complete(await store.begin(key, FP), key.encode())
    assert (await store.begin("a", FP)).kind is ClaimKind.STORED  # a is now most recent
    await store.complete(await store.begin("c", FP), b"c")
    assert len(store) == 2
    assert (await store.begin("a", FP)).kind is ClaimKind.STORED
    assert (await store.begin("b", FP)).kind is ClaimKind.RUN  # b was evicted


async def test_in_flight_entries_are_not_evicted_and_full_store_rejects() -> None:
    store = make(max_entries=2)
    await store.begin("a", FP)
    await store.begin("b", FP)
    rejected = await store.begin("c", FP)
    assert rejected.kind is ClaimKind.REJECTED
    error = rejected.error()
    assert error.status is Status.RESOURCE_EXHAUSTED and error.not_processed


async def test_byte_bound_evicts_least_recently_used() -> None:
    key_cost = 1 + len(FP)
    store = make(max_bytes=3 * (100 + key_cost))
    for key in "abc":
        await store.complete(await store.begin(key, FP), bytes(100))
    assert store.stored_bytes == 3 * (100 + key_cost)
    await store.complete(await store.begin("d", FP), bytes(150))
    assert store.stored_bytes <= store.max_bytes
    assert (await store.begin("a", FP)).kind is ClaimKind.RUN  # oldest went first
    assert (await store.begin("d", FP)).kind is ClaimKind.STORED


async def test_oversized_result_is_not_stored_but_reaches_waiters() -> None:
    clock = VirtualClock()
    store = make(clock, max_bytes=64)
    owner = await store.begin("k", FP)

    async def main() -> bytes | None:
        waiter = asyncio.ensure_future(store.wait(await store.begin("k", FP)))
        await clock.sleep(1.0)
        await store.complete(owner, bytes(1000))
        return (await waiter).result

    assert await clock.run(main()) == bytes(1000)
    assert len(store) == 0 and store.stored_bytes == 0


async def test_entries_expire_after_ttl() -> None:
    clock = VirtualClock(start=0.0)
    store = make(clock, ttl=10.0)
    await store.complete(await store.begin("k", FP), b"v")

    async def advance(seconds: float) -> None:
        await clock.sleep(seconds)

    await clock.run(advance(9.9))
    assert (await store.begin("k", FP)).kind is ClaimKind.STORED
    await clock.run(advance(0.1))
    assert (await store.begin("k", FP)).kind is ClaimKind.RUN
    assert store.stored_bytes == 0


async def test_waiters_are_bounded() -> None:
    clock = VirtualClock()
    store = make(clock, max_waiters_per_key=1)
    owner = await store.begin("k", FP)

    async def main() -> list[ClaimKind]:
        first = asyncio.ensure_future(store.wait(await store.begin("k", FP)))
        await clock.sleep(0.1)
        second = await store.wait(await store.begin("k", FP))
        await store.complete(owner, b"v")
        return [(await first).kind, second.kind]

    assert await clock.run(main()) == [ClaimKind.STORED, ClaimKind.REJECTED]


async def test_cancelled_waiter_is_uncounted() -> None:
    clock = VirtualClock()
    store = make(clock, max_waiters_per_key=1)
    owner = await store.begin("k", FP)

    async def main() -> ClaimKind:
        waiter = asyncio.ensure_future(store.wait(await store.begin("k", FP)))
        await clock.sleep(0.1)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        again = asyncio.ensure_future(store.wait(await store.begin("k", FP)))
        await clock.sleep(0.1)
        await store.complete(owner, b"v")
        return (await again).kind

    assert await clock.run(main()) is ClaimKind.STORED


async def test_wait_needs_a_wait_claim_and_bounds_are_validated() -> None:
    store = make()
    with pytest.raises(ValueError):
        await store.wait(await store.begin("k", FP))
    with pytest.raises(ValueError):
        InMemoryIdempotencyStore(clock=VirtualClock(), max_entries=0)
    shared = PolicyCounters()
    store = InMemoryIdempotencyStore(clock=VirtualClock(), counters=shared)
    await store.complete(await store.begin("k", FP), b"v")
    await store.begin("k", FP)
    assert shared.snapshot()["dedupe_hits"] == 1
