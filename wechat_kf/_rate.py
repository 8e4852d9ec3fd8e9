"""A token bucket for bulk sends: at most ``rate`` requests per second, bursts of ``burst``."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["RateLimiter"]


class RateLimiter:
    """A token bucket: on average ``rate`` acquisitions per second, at most ``burst`` at once.

    Over any span of ``t`` seconds at most ``burst + rate * t`` acquisitions go through. With
    the default ``burst=1`` sends are spaced evenly, ``1 / rate`` seconds apart.

    It is the "generic cell rate" form of the bucket: each :meth:`acquire` reserves the next
    free slot and sleeps until it, so it needs no lock and no background task, and any number
    of tasks (or several concurrent ``send_many`` runs sharing one limiter) may call it.

    A caller cancelled while it waits (a stopped bulk send interrupts its workers' waits) gives
    its slot back: the bucket is as if it had never asked, so a stopped run leaves no backlog
    for the others sharing the limiter. A slot given back while a later one is still held stays
    unused unless every later slot is given back too (handing it to the next caller would let
    two acquisitions through closer together than ``burst`` allows).

    Args:
        rate: Acquisitions per second (> 0; fractions allowed: ``0.5`` is one every 2 s).
        burst: How many may go at once after a quiet spell (>= 1).
        clock: Seconds, monotonic (default: the event loop's clock, ``anyio.current_time``).
        sleep: Waits that many seconds (default ``anyio.sleep``). Tests inject both.
    """

    __slots__ = (
        "_clock",
        "_given_back",
        "_interval",
        "_sleep",
        "_tat",
        "_tolerance",
        "burst",
        "rate",
    )

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"rate must be a number of messages per second > 0, got {rate!r}")
        if not math.isfinite(rate):
            raise ValueError("rate must be finite (pass rate=None for no limit)")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {burst!r}")
        self.rate: float = float(rate)
        self.burst: int = burst
        self._interval = 1.0 / self.rate
        self._tolerance = (burst - 1) * self._interval
        self._clock = clock or anyio.current_time
        self._sleep = sleep or anyio.sleep
        #: The "theoretical arrival time" of the next acquisition.
        self._tat = -math.inf
        #: Slots given back that are not at the end of the reservations yet: end -> start.
        self._given_back: dict[float, float] = {}

    def __repr__(self) -> str:
        return f"RateLimiter(rate={self.rate:g}, burst={self.burst})"

    def reserve(self) -> float:
        """Reserve the next slot now; return how many seconds to wait for it (0: go now)."""
        return self._reserve()[2]

    def _reserve(self) -> tuple[float, float, float]:
        """Reserve the next slot: its start, its end (the new ``_tat``) and the wait for it."""
        now = self._clock()
        if self._tat > now:  # pragma: no mutate (== now: either way the slot at now is next)
            tat = self._tat
        else:
            tat = now
            self._given_back.clear()  # every slot reserved so far is due: none to return to
        self._tat = end = tat + self._interval
        wait = tat - self._tolerance - now
        return tat, end, (wait if wait > 0 else 0.0)  # pragma: no mutate (>= 0: the same 0.0)

    def _give_back(self, start: float, end: float) -> None:
        """Return an unused slot; the reservations at the end are undone as far as they go."""
        given_back = self._given_back
        given_back[end] = start
        while self._tat in given_back:
            self._tat = given_back.pop(self._tat)

    def _used(self, end: float) -> None:
        """A slot was used: the slots given back before it can never be returned to."""
        # Hygiene only: those slots are never reached again (and none ends at ``end``).
        given_back = self._given_back  # pragma: no mutate (hygiene)
        if given_back:  # pragma: no mutate (hygiene)
            for stale in [key for key in given_back if key <= end]:  # pragma: no mutate (hygiene)
                del given_back[stale]

    async def acquire(self) -> None:
        """Wait for the next slot (cancelled while waiting: the slot is given back)."""
        start, end, wait = self._reserve()
        if wait:
            try:
                await self._sleep(wait)
            except BaseException:
                self._give_back(start, end)
                raise
        self._used(end)
