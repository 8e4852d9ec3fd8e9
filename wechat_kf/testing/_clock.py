"""``VirtualClock``: time that moves only when a test says so, for anything that waits."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel

from wechat_kf.testing._core import FakeClock

__all__ = ["Advance", "VirtualClock"]

#: Moves a store's time forward by this many seconds (really, or on a virtual clock).
Advance = Callable[[float], Awaitable[None]]

#: Bare checkpoints before asking whether every task waits: on asyncio,
#: ``anyio.wait_all_tasks_blocked`` sleeps 0.1 s (for real) each time it finds a task still
#: running, and tasks just woken usually finish in a few.
_CHECKPOINTS = 20


async def _settle() -> None:
    """Let every other task run until it waits."""
    for _ in range(_CHECKPOINTS):
        await anyio.lowlevel.checkpoint()
    await anyio.wait_all_tasks_blocked()


class VirtualClock:
    """A :class:`wechat_kf.callback.Clock` that moves only with :meth:`advance`.

    A bot whose answer takes 8 s is tested in no time: the endpoint's deadline, its
    "typing..." renewals and your handler's own ``await clock.sleep(8)`` all wait on this clock,
    and the test moves it::

        clock = VirtualClock(follow=fake.clock)    # the fake WeChat's clock moves along
        endpoint = CallbackEndpoint(handler, slow_answer, wechat=wx, clock=clock)
        ...                                        # post a push in a task
        await clock.sleeping(2)                    # the deadline and the handler both wait
        clock.advance(4)                           # the deadline passes: WeChat gets success

    ``follow`` is a :class:`~wechat_kf.testing.FakeClock` advanced with it, so that the fake's
    rules (response windows, the 30 s "typing..." rule, its 15 s duration) see the same time.
    :attr:`requested` records every sleep asked for, in seconds.

    The clock is also a plain ``Callable[[], float]`` (calling it is :meth:`now`), for the
    stores and the token manager: ``MemoryTokenStore(clock=clock)``,
    ``TokenManager(clock=clock, sleep=clock.sleep)``, ``Deduplicator(clock=clock)``. Where
    several tasks wait on each other (a lock renewed every few seconds while another process
    polls), ``await clock.elapse(30)`` plays the 30 seconds out in order::

        clock = VirtualClock()
        store = MemoryTokenStore(clock=clock)
        fence = await store.try_lock("wxapp", 10)
        await clock.elapse(10)  # the lock's TTL is over
        assert await store.try_lock("wxapp", 10) is not None

    One instance serves one event loop (asyncio or trio).
    """

    def __init__(self, *, follow: FakeClock | None = None, start: float = 0.0) -> None:
        self._now = float(start)
        self._follow = follow
        self._order = itertools.count()
        # (wake-up time, order, event), earliest first
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._changed = anyio.Event()
        #: Every duration passed to :meth:`sleep`, in call order.
        self.requested: list[float] = []

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now:g}, sleepers={len(self._sleepers)})"

    def now(self) -> float:
        """The clock's time: ``start`` plus everything advanced."""
        return self._now

    def __call__(self) -> float:
        """:meth:`now`: the clock is a ``Callable[[], float]`` too."""
        return self._now

    @property
    def sleepers(self) -> list[float]:
        """When each task sleeping on this clock wakes up, earliest first."""
        return [wake for wake, _, _ in self._sleepers]

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has advanced ``seconds`` (at once for 0 or less)."""
        self.requested.append(seconds)
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        entry = (self._now + seconds, next(self._order), anyio.Event())
        bisect.insort(self._sleepers, entry)
        self._notify()
        try:
            await entry[2].wait()
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)
                self._notify()

    def advance(self, seconds: float) -> None:
        """Move time forward (and the followed fake clock); wake every sleeper now due."""
        if seconds < 0:
            raise ValueError("a VirtualClock only moves forward")
        self._set_time(self._now + seconds)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, event = self._sleepers.pop(0)
            event.set()
        self._notify()

    async def elapse(self, seconds: float) -> None:
        """Let ``seconds`` pass, each sleeper waking at its own time and running in turn.

        Time stops at each wake-up due meanwhile, earliest first (in the order they began to
        sleep when due together), and every task runs until it waits again
        (``anyio.wait_all_tasks_blocked``) before the next one wakes: a chain of sleeps (a lock
        renewed every 5 s, a poll backing off) plays out in order, the same way every run.
        """
        if seconds < 0:
            raise ValueError("a VirtualClock only moves forward")
        until = self._now + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            wake, _, event = self._sleepers.pop(0)
            self._set_time(max(self._now, wake))
            event.set()
            self._notify()
            await _settle()
        self._set_time(until)

    def _set_time(self, when: float) -> None:
        if self._follow is not None:
            self._follow.advance(when - self._now)
        self._now = when

    def advance_to_next(self) -> float:
        """Advance to the earliest sleeper's wake-up time (waking it); return the new time."""
        if not self._sleepers:
            raise RuntimeError("nothing sleeps on this clock")
        self.advance(max(self._sleepers[0][0] - self._now, 0.0))
        return self._now

    async def sleeping(self, count: int = 1) -> None:
        """Return once at least ``count`` tasks sleep on this clock (so an advance reaches them)."""
        while len(self._sleepers) < count:
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
