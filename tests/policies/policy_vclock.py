"""A virtual clock for executor tests: `sleep` waits on virtual time, which `run` advances.

`run(coro)` drives the coroutine: it lets the event loop settle (until no callback is ready),
then jumps virtual time to the earliest pending sleeper and wakes it, and so on. Nothing really
sleeps, and the interleaving is the same on every run.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualClock:
    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    def pending(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def _settle(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(10_000):
            await asyncio.sleep(0)
            if not getattr(loop, "_ready", ()):
                return
        raise RuntimeError("event loop never settled")

    async def run(self, coro: Coroutine[Any, Any, T], *, max_steps: int = 100_000) -> T:
        task = asyncio.ensure_future(coro)
        try:
            for _ in range(max_steps):
                await self._settle()
                if task.done():
                    return task.result()
                while self._sleepers and self._sleepers[0][2].done():
                    heapq.heappop(self._sleepers)  # cancelled sleepers
                if not self._sleepers:
                    raise RuntimeError("deadlock: the task waits on nothing the clock drives")
                wake, _, _ = self._sleepers[0]
                self._now = max(self._now, wake)
                while self._sleepers and self._sleepers[0][0] <= self._now:
                    _, _, future = heapq.heappop(self._sleepers)
                    if not future.done():
                        future.set_result(None)
            raise RuntimeError("too many steps")
        finally:
            if not task.done():
                task.cancel()
