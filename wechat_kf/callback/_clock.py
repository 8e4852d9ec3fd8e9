"""The time the receiving side waits by: a reply deadline, "typing..." renewals, shutdown grace.

:class:`CallbackEndpoint` reads and waits through a :class:`Clock`, so that a test (or the
demo) can run an 8-second answer in no time: ``wechat_kf.testing.VirtualClock`` moves only
when told to.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, TypeVar

import anyio

__all__ = ["TIMED_OUT", "Clock", "SystemClock", "within"]

T = TypeVar("T")


class Clock(Protocol):
    """Seconds that only go forward (``now``) and a way to wait for some (``sleep``)."""

    def now(self) -> float:
        """The current time in seconds (any origin; only differences matter)."""

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock (cancellable)."""


class SystemClock:
    """The real clock: ``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


class _TimedOut:
    def __repr__(self) -> str:
        return "TIMED_OUT"


#: What :func:`within` returns when the time ran out first.
TIMED_OUT: Final = _TimedOut()


async def within(
    clock: Clock, seconds: float | None, wait: Callable[[], Awaitable[T]]
) -> T | _TimedOut:
    """``await wait()``, unless ``seconds`` pass first on ``clock`` (then :data:`TIMED_OUT`).

    ``None`` waits as long as it takes. ``wait`` must not raise (it is cancelled on time-out):
    return a sentinel instead.
    """
    if seconds is None:
        return await wait()
    result: T | _TimedOut = TIMED_OUT
    async with anyio.create_task_group() as group:

        async def alarm() -> None:
            await clock.sleep(max(seconds, 0.0))
            group.cancel_scope.cancel()

        group.start_soon(alarm)
        result = await wait()
        group.cancel_scope.cancel()
    return result
