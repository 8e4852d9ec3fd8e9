"""A reusable test suite for service-window stores: run it on yours.

Subclass :class:`WindowStoreContract` in one of your test modules (the name must start with
``Test``) and give it a ``store`` fixture; pytest with the anyio plugin (``pip install anyio
pytest``) runs every contract test against your store::

    import pytest
    from wechat_kf.testing.window_store_contract import WindowStoreContract


    class TestMyWindowStore(WindowStoreContract):
        @pytest.fixture
        async def store(self):
            store = await MyWindowStore.connect(...)
            yield store
            await store.close()

Each test uses a fresh random appid, so a store on a shared database needs no cleanup. Times
are passed in (the store never reads a clock), so nothing here sleeps. The suite runs on
whatever ``anyio_backend`` your tests use (override that fixture in the subclass to pin one, for
example ``"asyncio"`` for a store built on an asyncio-only client).
"""

from __future__ import annotations

import time
import uuid
from typing import ClassVar

import anyio
import attrs
import pytest

from wechat_kf._window_store import (
    NO_MESSAGES_LEFT,
    OUTSIDE_WINDOW,
    SpendOutcome,
    StoredWindow,
    WindowRecord,
    WindowStore,
)

__all__ = ["WindowStoreContract"]

#: Seconds a record is kept past its horizon in these tests.
MEMORY = 3600.0
#: A user message window: 48 h, 5 messages.
MESSAGE = 48 * 3600.0


def window(
    name: str, at: float, *, duration: float = MESSAGE, left: int = 5, ref: str = ""
) -> StoredWindow:
    """A window called ``name`` opened at ``at``."""
    return StoredWindow(window=name, opened_at=at, until=at + duration, left=left, ref=ref)


class WindowStoreContract:
    """The window store contract as pytest tests. Subclass it and define a ``store`` fixture."""

    #: Users written by the streaming test: more than one page of any sensible page size.
    stream_users: ClassVar[int] = 1_234

    @pytest.fixture
    def store(self) -> WindowStore:
        """The store under test: override this fixture in your subclass."""
        raise NotImplementedError("define a `store` fixture in your WindowStoreContract subclass")

    @pytest.fixture
    def appid(self) -> str:
        """A fresh appid per test, so tests never see each other's keys."""
        return f"wxwindows{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def now(self) -> float:
        """The tests' "now": real time with a fraction, so float round trips are checked."""
        return float(int(time.time())) + 0.125

    # ------------------------------------------------------------------ open and get

    @pytest.mark.anyio
    async def test_unknown_user_has_no_record(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """Nothing stored: ``get`` returns ``None``."""
        assert await store.get(appid, "o_nobody", now=now) is None

    @pytest.mark.anyio
    async def test_open_then_get_round_trips(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """A window comes back exactly as it went in, ``keep_until`` past its end."""
        opened = window("message", now, ref="msg:6054768590064713728")
        assert await store.open(appid, "o_a", opened, memory=MEMORY) is True
        record = await store.get(appid, "o_a", now=now)
        assert record is not None
        assert record.windows == (opened,)
        assert record.checked_at is None
        assert record.errcode is None
        assert record.keep_until == pytest.approx(opened.until + MEMORY)

    @pytest.mark.anyio
    async def test_windows_of_other_names_are_kept_apart(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """Opening ``event`` leaves ``message`` as it was; each name holds one window."""
        message = window("message", now)
        event = window("event", now + 1, duration=60, left=3)
        await store.open(appid, "o_a", message, memory=MEMORY)
        await store.open(appid, "o_a", event, memory=MEMORY)
        record = await store.get(appid, "o_a", now=now + 1)
        assert record is not None
        assert set(record.windows) == {message, event}

    @pytest.mark.anyio
    async def test_a_later_opening_renews_the_window(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """A newer interaction replaces the window: the full count from the new time."""
        await store.open(appid, "o_a", window("message", now, left=1), memory=MEMORY)
        renewed = window("message", now + 10)
        assert await store.open(appid, "o_a", renewed, memory=MEMORY) is True
        record = await store.get(appid, "o_a", now=now + 10)
        assert record is not None
        assert record.windows == (renewed,)

    @pytest.mark.anyio
    async def test_an_older_or_repeated_opening_changes_nothing(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """An older opening, or the same one again (same time and ref), is ignored; the same
        time with another ref (a second message in that second) renews."""
        current = window("message", now, left=2, ref="msg:2")
        await store.open(appid, "o_a", current, memory=MEMORY)
        assert await store.open(appid, "o_a", window("message", now - 5), memory=MEMORY) is False
        again = window("message", now, ref="msg:2")
        assert await store.open(appid, "o_a", again, memory=MEMORY) is False
        record = await store.get(appid, "o_a", now=now)
        assert record is not None
        assert record.windows == (current,)
        other = window("message", now, ref="msg:3")
        assert await store.open(appid, "o_a", other, memory=MEMORY) is True
        record = await store.get(appid, "o_a", now=now)
        assert record is not None
        assert record.windows == (other,)

    @pytest.mark.anyio
    async def test_record_is_forgotten_after_its_memory(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """Past ``keep_until`` the user is unknown again (for ``get`` and ``spend``)."""
        opened = window("event", now, duration=60, left=3)
        await store.open(appid, "o_a", opened, memory=MEMORY)
        later = opened.until + MEMORY
        assert await store.get(appid, "o_a", now=later - 0.125) is not None
        assert [o async for o, _ in store.records(appid, now=later - 0.125)] == ["o_a"]
        assert await store.get(appid, "o_a", now=later) is None  # kept until, not at, its end
        assert [o async for o, _ in store.records(appid, now=later)] == []
        spend = await store.spend(appid, "o_a", now=later, reserve=True)
        assert spend.outcome is SpendOutcome.UNKNOWN

    # ------------------------------------------------------------------ spend

    @pytest.mark.anyio
    async def test_spend_on_an_unknown_user_records_nothing(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """Unknown stays unknown, with or without ``reserve``."""
        for reserve in (True, False):
            spend = await store.spend(appid, "o_new", now=now, reserve=reserve)
            assert spend.outcome is SpendOutcome.UNKNOWN
        assert await store.get(appid, "o_new", now=now) is None

    @pytest.mark.anyio
    async def test_spend_takes_from_the_window_ending_first(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """The 1-minute window is spent before the 48 h one; an ended one never."""
        message = window("message", now, ref="msg:1")
        event = window("event", now, duration=60, left=1, ref="event:CLICK:BUY")
        await store.open(appid, "o_a", message, memory=MEMORY)
        await store.open(appid, "o_a", event, memory=MEMORY)
        first = await store.spend(appid, "o_a", now=now + 1, reserve=True)
        assert first.outcome is SpendOutcome.CHARGED
        assert first.window == attrs.evolve(event, left=0)  # the window, after the charge
        second = await store.spend(appid, "o_a", now=now + 1, reserve=False)
        assert second.outcome is SpendOutcome.CHARGED
        assert second.window == attrs.evolve(message, left=4)
        await store.open(appid, "o_a", window("event", now + 2, duration=60), memory=MEMORY)
        third = await store.spend(appid, "o_a", now=now + 63, reserve=True)  # event ended
        assert third.window is not None
        assert (third.window.window, third.window.left) == ("message", 3)

    @pytest.mark.anyio
    async def test_a_window_is_open_until_not_at_its_end(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """A send at the very moment a window ends spends from the next one."""
        await store.open(appid, "o_a", window("message", now), memory=MEMORY)
        await store.open(appid, "o_a", window("event", now, duration=60, left=3), memory=MEMORY)
        first = await store.spend(appid, "o_a", now=now + 59.875, reserve=True)
        assert first.window is not None
        assert (first.window.window, first.window.left) == ("event", 2)
        second = await store.spend(appid, "o_a", now=now + 60, reserve=True)
        assert second.window is not None
        assert (second.window.window, second.window.left) == ("message", 4)

    @pytest.mark.anyio
    async def test_a_tie_is_broken_by_name(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """Two windows ending at the same moment: the first by name is spent first."""
        await store.open(appid, "o_a", window("message", now, duration=60), memory=MEMORY)
        await store.open(appid, "o_a", window("event", now, duration=60), memory=MEMORY)
        spend = await store.spend(appid, "o_a", now=now, reserve=True)
        assert spend.window is not None
        assert spend.window.window == "event"

    @pytest.mark.anyio
    async def test_reserve_reports_an_exhausted_record(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """Nothing left: ``reserve`` answers EXHAUSTED with the record, and spends nothing."""
        opened = window("event", now, duration=60, left=1)
        await store.open(appid, "o_a", opened, memory=MEMORY)
        assert (await store.spend(appid, "o_a", now=now, reserve=True)).outcome is (
            SpendOutcome.CHARGED
        )
        spend = await store.spend(appid, "o_a", now=now, reserve=True)
        assert spend.outcome is SpendOutcome.EXHAUSTED
        assert spend.record is not None
        assert spend.record.windows == (attrs.evolve(opened, left=0),)
        closed = await store.spend(appid, "o_a", now=now + 61, reserve=True)
        assert closed.outcome is SpendOutcome.EXHAUSTED

    @pytest.mark.anyio
    async def test_an_accepted_send_with_nothing_left_forgets_the_user(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """WeChat accepted a send the record had no message for: the record was wrong (an
        interaction went unseen), so it is dropped and the user is unknown."""
        await store.open(appid, "o_a", window("event", now, duration=60, left=0), memory=MEMORY)
        spend = await store.spend(appid, "o_a", now=now, reserve=False)
        assert spend.outcome is SpendOutcome.FORGOTTEN
        assert await store.get(appid, "o_a", now=now) is None

    @pytest.mark.anyio
    async def test_concurrent_reservations_never_exceed_the_window(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """60 concurrent reservations on a 5-message window: exactly 5 are granted."""
        await store.open(appid, "o_a", window("message", now), memory=MEMORY)
        outcomes: list[SpendOutcome] = []

        async def reserve() -> None:
            outcomes.append((await store.spend(appid, "o_a", now=now, reserve=True)).outcome)

        async with anyio.create_task_group() as tg:
            for _ in range(60):
                tg.start_soon(reserve)
        assert outcomes.count(SpendOutcome.CHARGED) == 5
        assert outcomes.count(SpendOutcome.EXHAUSTED) == 55

    # ------------------------------------------------------------------ refund

    @pytest.mark.anyio
    async def test_refund_gives_back_to_the_same_opening_only(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """A refund restores the message; after a renewal (another opening) it does nothing."""
        await store.open(appid, "o_a", window("message", now), memory=MEMORY)
        await store.spend(appid, "o_a", now=now, reserve=True)
        assert await store.refund(appid, "o_a", window="message", opened_at=now) is True
        record = await store.get(appid, "o_a", now=now)
        assert record is not None
        assert record.windows[0].left == 5
        await store.spend(appid, "o_a", now=now, reserve=True)
        await store.open(appid, "o_a", window("message", now + 1), memory=MEMORY)
        assert await store.refund(appid, "o_a", window="message", opened_at=now) is False
        assert await store.refund(appid, "o_nobody", window="message", opened_at=now) is False
        record = await store.get(appid, "o_a", now=now + 1)
        assert record is not None
        assert record.windows[0].left == 5

    # ------------------------------------------------------------------ correct

    @pytest.mark.anyio
    async def test_45015_drops_the_windows_opened_before_the_send(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """WeChat said no window was open: the ones opened up to the send's start go; one opened
        while the send was in flight stays. The record remembers the check."""
        await store.open(appid, "o_a", window("message", now), memory=MEMORY)
        await store.open(appid, "o_a", window("event", now + 5, duration=60), memory=MEMORY)
        await store.correct(
            appid, "o_a", errcode=OUTSIDE_WINDOW, before=now, now=now + 6, memory=MEMORY
        )  # opened at the very start of the send: dropped
        record = await store.get(appid, "o_a", now=now + 6)
        assert record is not None
        assert [w.window for w in record.windows] == ["event"]
        assert record.checked_at == now + 6
        assert record.errcode == OUTSIDE_WINDOW

    @pytest.mark.anyio
    async def test_45047_uses_up_the_windows_opened_before_the_send(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """WeChat said the messages are used up: those windows keep their end, with 0 left."""
        await store.open(appid, "o_a", window("message", now), memory=MEMORY)
        await store.correct(
            appid, "o_a", errcode=NO_MESSAGES_LEFT, before=now, now=now + 2, memory=MEMORY
        )  # opened at the very start of the send: used up
        record = await store.get(appid, "o_a", now=now + 2)
        assert record is not None
        assert [(w.window, w.left, w.until) for w in record.windows] == [
            ("message", 0, now + MESSAGE)
        ]
        assert record.errcode == NO_MESSAGES_LEFT
        spend = await store.spend(appid, "o_a", now=now + 2, reserve=True)
        assert spend.outcome is SpendOutcome.EXHAUSTED

    @pytest.mark.anyio
    async def test_a_correction_makes_an_unknown_user_known(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """45015 on a user the store never saw: now known (no window), kept for ``memory``."""
        await store.correct(
            appid, "o_new", errcode=OUTSIDE_WINDOW, before=now, now=now, memory=MEMORY
        )
        record = await store.get(appid, "o_new", now=now)
        assert record is not None
        assert record == WindowRecord(
            checked_at=now, errcode=OUTSIDE_WINDOW, keep_until=record.keep_until
        )
        assert record.keep_until == pytest.approx(now + MEMORY)
        assert (await store.spend(appid, "o_new", now=now, reserve=True)).outcome is (
            SpendOutcome.EXHAUSTED
        )
        assert await store.get(appid, "o_new", now=now + MEMORY + 1) is None

    # ------------------------------------------------------------------ forget, scopes

    @pytest.mark.anyio
    async def test_forget_drops_the_record(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """``forget`` makes the user unknown; forgetting nothing is not an error."""
        await store.open(appid, "o_a", window("message", now), memory=MEMORY)
        await store.forget(appid, "o_a")
        assert await store.get(appid, "o_a", now=now) is None
        assert [openid async for openid, _ in store.records(appid, now=now)] == []
        await store.forget(appid, "o_a")

    @pytest.mark.anyio
    async def test_appids_are_separate(self, store: WindowStore, appid: str, now: float) -> None:
        """Each appid has its own users."""
        other = appid + "b"
        await store.open(appid, "o_a", window("message", now), memory=MEMORY)
        assert await store.get(other, "o_a", now=now) is None
        assert [openid async for openid, _ in store.records(other, now=now)] == []

    # ------------------------------------------------------------------ records

    @pytest.mark.anyio
    async def test_records_streams_every_live_user_once(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """More users than a page: each live one exactly once, forgotten ones not at all."""
        users = [f"o_user{i:05d}" for i in range(self.stream_users)]
        for i, openid in enumerate(users):
            duration = 60.0 if i % 10 == 0 else MESSAGE  # every tenth ends (and is forgotten)
            await store.open(
                appid, openid, window("message", now, duration=duration), memory=MEMORY
            )
        later = now + 60 + MEMORY + 1
        seen = [openid async for openid, _ in store.records(appid, now=later)]
        assert sorted(seen) == [u for i, u in enumerate(users) if i % 10 != 0]
        assert len(seen) == len(set(seen))

    @pytest.mark.anyio
    async def test_records_sees_users_present_throughout_once_despite_writes(
        self, store: WindowStore, appid: str, now: float
    ) -> None:
        """Writes while the stream runs (renewals, spends, new users, forgets) never make a
        user present for the whole iteration appear twice or go missing."""
        users = [f"o_user{i:05d}" for i in range(self.stream_users)]
        for openid in users:
            await store.open(appid, openid, window("message", now), memory=MEMORY)
        seen: list[str] = []
        async for openid, _ in store.records(appid, now=now):
            seen.append(openid)
            position = len(seen)
            if position % 7 == 0:
                renewed = window("message", now + position)
                await store.open(appid, users[-position], renewed, memory=MEMORY)
                await store.spend(appid, users[position], now=now, reserve=True)
            if position % 11 == 0:
                await store.open(appid, f"o_new{position:05d}", window("event", now), memory=1)
        assert len(seen) == len(set(seen))
        assert set(users) <= set(seen)

    @pytest.mark.anyio
    async def test_repr_works(self, store: WindowStore) -> None:
        """The store has a repr (shown in the ledger's)."""
        assert type(store).__name__ in repr(store)
