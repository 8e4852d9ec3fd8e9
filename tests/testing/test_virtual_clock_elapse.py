"""VirtualClock.elapse: each sleeper wakes at its own time, in order, and runs before time moves on."""

from __future__ import annotations

import anyio
import pytest

from wechat_kf.testing import VirtualClock

pytestmark = pytest.mark.anyio


async def test_sleepers_wake_in_deadline_order_at_their_deadline() -> None:
    time = VirtualClock(start=100.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await time.sleep(seconds)
        woke.append((name, time()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "late", 3.0)
        tg.start_soon(sleeper, "early", 1.0)
        tg.start_soon(sleeper, "middle", 2.0)
        await time.elapse(0.5)
        assert woke == []
        assert len(time.sleepers) == 3
        await time.elapse(2.5)  # exactly the late one's deadline
    assert woke == [("early", 101.0), ("middle", 102.0), ("late", 103.0)]
    assert time() == time.now() == 103.0
    assert len(time.sleepers) == 0


async def test_a_chain_of_sleeps_plays_out_within_one_advance() -> None:
    time = VirtualClock(start=0.0)
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            await time.sleep(1.0)
            ticks.append(time())

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await time.elapse(3.5)
        assert ticks == [1.0, 2.0, 3.0]
        assert time() == 3.5
        await time.elapse(10)
    assert ticks == [1.0, 2.0, 3.0, 4.0, 5.0]  # each second counted from the last wake-up


async def test_nothing_moves_without_advance() -> None:
    time = VirtualClock(start=5.0)
    with anyio.move_on_after(0.05):  # real time passes; fake time does not
        await time.sleep(1e-9)
        pytest.fail("a fake sleep ended without advance()")
    assert time() == 5.0
    assert len(time.sleepers) == 0  # the cancelled sleeper is gone


async def test_zero_sleep_returns_and_time_only_moves_forward() -> None:
    time = VirtualClock(start=0.0)
    await time.sleep(0)
    await time.sleep(-1)
    with pytest.raises(ValueError, match="forward"):
        await time.elapse(-1)
    await time.elapse(0)
    assert time() == 0.0
    assert repr(time) == "VirtualClock(now=0, sleepers=0)"


async def test_elapse_moves_the_followed_fake_clock_by_the_same_time() -> None:
    from wechat_kf.testing import FakeClock

    fake = FakeClock()
    start = fake.now()
    time = VirtualClock(follow=fake)

    async def sleeper() -> None:
        await time.sleep(1.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await time.elapse(4)
    assert 3.9 < fake.now() - start < 4.5  # the fake's own clock also runs on real time
    assert time.requested == [1.5]
