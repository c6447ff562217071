"""The clocks: AsyncioClock reads the loop, the virtual clock advances only when all wait."""

from __future__ import annotations

import asyncio

import pytest
from policy_vclock import VirtualClock

from rpcnet_runtime.clock import AsyncioClock, Clock


async def test_asyncio_clock_is_the_loop_clock() -> None:
    clock = AsyncioClock()
    assert isinstance(clock, Clock)
    loop = asyncio.get_running_loop()
    before = loop.time()
    now = clock.now()
    assert before <= now <= loop.time()
    await clock.sleep(-1.0)  # returns at once for non-positive waits
    assert clock.now() - now < 1.0


async def test_virtual_clock_advances_to_sleepers_in_order() -> None:
    clock = VirtualClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    async def main() -> None:
        await asyncio.gather(sleeper("b", 2.0), sleeper("a", 1.0), sleeper("c", 2.0))

    await clock.run(main())
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 2.0)]


async def test_virtual_clock_reports_deadlock() -> None:
    clock = VirtualClock()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(RuntimeError, match="deadlock"):
        await clock.run(asyncio.wait_for(never, None))
