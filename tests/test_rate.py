"""The rate limiter of bulk sends, on its own: settings, slots on a fake clock, given-back slots.

The bulk engine's use of it (a stop interrupting waiting workers, the rate of a real run) is
tested in tests/test_bulk.py.
"""

from __future__ import annotations

import math
import re

import anyio
import pytest

from wechat_kf import RateLimiter

pytestmark = pytest.mark.anyio


class Clock:
    """A fake clock whose sleeps move it forward (and record what they waited)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 0}, "rate must be a number of messages per second > 0, got 0"),
        ({"rate": -0.5}, "rate must be a number of messages per second > 0, got -0.5"),
        ({"rate": True}, "rate must be a number of messages per second > 0, got True"),
        ({"rate": "5"}, "rate must be a number of messages per second > 0, got '5'"),
        ({"rate": math.nan}, "rate must be a number of messages per second > 0, got nan"),
        ({"rate": math.inf}, "rate must be finite (pass rate=None for no limit)"),
        ({"rate": 1, "burst": 0}, "burst must be an integer >= 1, got 0"),
        ({"rate": 1, "burst": True}, "burst must be an integer >= 1, got True"),
        ({"rate": 1, "burst": 2.0}, "burst must be an integer >= 1, got 2.0"),
    ],
)
def test_bad_settings_are_refused_with_their_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


def test_settings_and_repr() -> None:
    limiter = RateLimiter(2)
    assert (limiter.rate, limiter.burst) == (2.0, 1)
    assert type(limiter.rate) is float
    assert repr(limiter) == "RateLimiter(rate=2, burst=1)"
    assert repr(RateLimiter(0.25, burst=3)) == "RateLimiter(rate=0.25, burst=3)"
    assert RateLimiter(1e-9).rate == 1e-9  # any positive rate, however slow


def test_one_slot_every_interval_and_a_burst_after_a_quiet_spell() -> None:
    clock = Clock()
    limiter = RateLimiter(2, burst=3, clock=clock)
    assert [limiter.reserve() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 1.0]
    clock.now = 1.0  # two slots have passed since: the next is 0.5 s away
    assert limiter.reserve() == 0.5
    clock.now = 100.0  # quiet: a full burst again, then the interval
    assert [limiter.reserve() for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_a_slot_due_exactly_now_is_free() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.reserve() == 0.0
    clock.now = 0.75
    assert limiter.reserve() == 0.25  # the slot at 1.0
    clock.now = 2.0  # exactly when the next slot (2.0) is due
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == 1.0
    clock.now = 2.5
    assert limiter.reserve() == 1.5  # the slot at 4.0


async def test_acquire_sleeps_until_its_slot() -> None:
    clock = Clock(now=10.0)
    limiter = RateLimiter(4, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await limiter.acquire()
    assert clock.waits == [0.25, 0.25, 0.25]  # two at once, then one every 0.25 s
    assert clock.now == 10.75


async def test_the_default_clock_and_sleep_are_the_event_loops() -> None:
    limiter = RateLimiter(1000)  # a millisecond apart: the only real waits of these tests
    for _ in range(3):
        await limiter.acquire()
    assert 0.0 <= limiter.reserve() <= 0.001  # at most one interval ahead of the loop's clock


async def test_a_slot_given_back_is_the_next_one_handed_out() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # slot 0
    with anyio.move_on_after(0) as waiting:  # cancelled while it waits for slot 1
        await limiter.acquire()
    assert waiting.cancelled_caught
    assert clock.waits == [1.0]
    assert clock.now == 1.0  # the fake sleep moved the clock before the cancellation hit
    assert limiter.reserve() == 0.0  # slot 1 (due now) was given back: free again
    assert limiter.reserve() == 1.0


async def test_a_slot_used_behind_one_given_back_closes_the_gap() -> None:
    clock = Clock()
    releases: list[anyio.Event] = []

    async def sleep(seconds: float) -> None:  # each wait lasts until the test releases it
        release = anyio.Event()
        releases.append(release)
        await release.wait()

    limiter = RateLimiter(1, clock=clock, sleep=sleep)
    await limiter.acquire()  # slot 0, at once
    early = anyio.CancelScope()

    async def wait_early() -> None:
        with early:
            await limiter.acquire()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_early)  # slot 1
        while len(releases) < 1:
            await anyio.lowlevel.checkpoint()
        tg.start_soon(limiter.acquire)  # slot 2
        while len(releases) < 2:
            await anyio.lowlevel.checkpoint()
        early.cancel()  # slot 1 given back, behind slot 2 still held
        releases[1].set()  # slot 2 is used: slot 1 can never be handed out now
    assert limiter.reserve() == 3.0
    assert limiter.reserve() == 4.0
