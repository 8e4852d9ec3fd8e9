"""Fake time for tests of anything that waits: stores, token managers, their contracts."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

__all__ = ["Advance", "FakeTime"]

#: Moves a store's time forward by this many seconds (really, or on a fake clock).
Advance = Callable[[float], Awaitable[None]]


async def _settle() -> None:
    """Let every other task run until it waits."""
    # A few bare checkpoints first: on asyncio, wait_all_tasks_blocked sleeps 0.1 s (for real)
    # each time it finds a task still running, and just-woken tasks usually finish in a few.
    for _ in range(_CHECKPOINTS):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


#: Checkpoints before asking whether every task waits.
_CHECKPOINTS = 20


class FakeTime:
    """Time that moves only when a test says so, and sleeps that wait on it.

    Pass the instance wherever a clock is taken (``MemoryTokenStore(clock=fake_time)``,
    ``TokenManager(clock=fake_time, sleep=fake_time.sleep)``) and move it with
    :meth:`advance`: every task sleeping on it wakes at its own deadline, in deadline order,
    and runs until it waits again before time moves on. Nothing sleeps for real, and what
    happens no longer depends on how busy the machine is::

        time = FakeTime()
        store = MemoryTokenStore(clock=time)
        fence = await store.try_lock("wxapp", 10)
        await time.advance(10)  # the lock's TTL is over
        assert await store.try_lock("wxapp", 10) is not None

    One instance serves one event loop (asyncio or trio). It starts at the wall-clock time
    it was made (or at ``start``), so it also stands in for ``time.time``.
    """

    def __init__(self, start: float | None = None) -> None:
        #: The current fake time, in seconds.
        self.now: float = time.time() if start is None else start
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        """The current fake time: the instance is a clock."""
        return self.now

    @property
    def sleepers(self) -> int:
        """How many tasks are sleeping on this clock right now."""
        return len(self._sleepers)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has moved ``seconds`` forward (at once for ``seconds <= 0``)."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        entry = (self.now + seconds, next(self._order), anyio.Event())
        heapq.heappush(self._sleepers, entry)
        try:
            await entry[2].wait()
        finally:
            if entry in self._sleepers:  # cancelled before its deadline
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

    async def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward, letting every sleeper due meanwhile run.

        Before time moves, and after each sleeper wakes, every task runs until it waits
        again (``anyio.wait_all_tasks_blocked``), so a chain of sleeps (a lock renewed
        every few seconds, a poll backing off) plays out in order within one call.
        """
        if seconds < 0:
            raise ValueError(f"time only moves forward: advance({seconds!r})")
        target = self.now + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, event = heapq.heappop(self._sleepers)
            self.now = max(self.now, deadline)
            event.set()
            await _settle()
        self.now = target

    def __repr__(self) -> str:
        return f"FakeTime(now={self.now:.3f}, sleepers={self.sleepers})"
