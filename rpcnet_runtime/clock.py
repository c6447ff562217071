"""Time as an injected dependency: the `Clock` protocol and the asyncio implementation.

Pure policy objects take ``now`` as an argument; the async shells that act on their decisions
read and wait on a `Clock`, so tests can substitute a virtual clock and never really sleep.
`AsyncioClock` reads the running loop's monotonic clock, the clock deadlines in
`rpcnet_runtime.context.CallContext` are expressed on.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

__all__ = ["AsyncioClock", "Clock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock in seconds that can also wait."""

    def now(self) -> float:
        """The current time in seconds on this clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after `seconds` have passed on this clock (at once when not positive)."""
        ...


class AsyncioClock:
    """The running event loop's clock (``loop.time()``) and ``asyncio.sleep``."""

    __slots__ = ()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "AsyncioClock()"
