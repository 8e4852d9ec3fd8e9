"""The window records' operations and the memory window store's own promises.

The store contract (tests/test_window_store_contract.py) checks what every store does; these
check what :class:`~wechat_kf._window_store.WindowRecord` specifies for all of them (a record's
lifetime, its horizon) and what only the memory store promises (its size on its own clock,
its bound, its repr).
"""

from __future__ import annotations

import attrs
import pytest

from tests.testing.fake_http import FrozenClock
from wechat_kf import MemoryWindowStore
from wechat_kf._window_store import (
    NO_MESSAGES_LEFT,
    OUTSIDE_WINDOW,
    SpendOutcome,
    StoredWindow,
    WindowRecord,
)

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0
MEMORY = 3600.0
APPID = "wx_store"


def window(name: str, at: float, *, duration: float = 60.0, left: int = 3) -> StoredWindow:
    return StoredWindow(window=name, opened_at=at, until=at + duration, left=left)


# ---------------------------------------------------------------------- records


def test_a_record_is_kept_memory_past_its_last_window_or_check() -> None:
    record = WindowRecord().opened(window("event", NOW), MEMORY)
    assert record is not None
    assert record.keep_until == NOW + 60 + MEMORY
    checked = record.corrected(OUTSIDE_WINDOW, before=NOW - 1, now=NOW + 600, memory=MEMORY)
    assert checked.horizon == NOW + 600  # the check is later than the window's end
    assert checked.keep_until == NOW + 600 + MEMORY


def test_a_record_is_never_kept_for_less_than_it_was() -> None:
    record = WindowRecord().opened(window("message", NOW, duration=48 * 3600), MEMORY)
    assert record is not None
    kept = record.keep_until
    corrected = record.corrected(NO_MESSAGES_LEFT, before=NOW, now=NOW + 1, memory=0.0)
    assert corrected.keep_until == kept
    dropped = record.corrected(OUTSIDE_WINDOW, before=NOW, now=NOW + 1, memory=0.0)
    assert (dropped.windows, dropped.keep_until) == ((), kept)


def test_an_empty_record_has_no_horizon() -> None:
    assert WindowRecord().horizon == 0.0
    assert WindowRecord(checked_at=NOW).horizon == NOW


def test_the_windows_are_kept_in_spending_order() -> None:
    record = WindowRecord()
    for opened in (window("message", NOW, duration=48 * 3600), window("event", NOW + 5)):
        renewed = record.opened(opened, MEMORY)
        assert renewed is not None
        record = renewed
    assert [w.window for w in record.windows] == ["event", "message"]
    charged = record.charged(NOW + 5)
    assert charged is not None
    assert [(w.window, w.left) for w in charged[0].windows] == [("event", 2), ("message", 3)]
    refunded = charged[0].refunded("event", NOW + 5)
    assert refunded is not None
    assert refunded.windows == record.windows


def test_a_refund_goes_to_the_window_it_names_only() -> None:
    record = WindowRecord(windows=(window("event", NOW, left=0), window("message", NOW, left=0)))
    refunded = record.refunded("message", NOW)
    assert refunded is not None
    assert [(w.window, w.left) for w in refunded.windows] == [("event", 0), ("message", 1)]
    assert record.refunded("message", NOW + 1) is None  # another opening
    assert record.refunded("other", NOW) is None


def test_a_window_is_open_until_not_at_its_end() -> None:
    opened = window("event", NOW)
    assert opened.is_open(NOW + 59.5)
    assert not opened.is_open(NOW + 60)


# ---------------------------------------------------------------------- the memory store


async def test_the_memory_store_holds_a_record_for_its_lifetime_on_its_own_clock() -> None:
    """Its map expires entries on its monotonic clock: a record takes as long there as it is
    kept (``keep_until`` on the ledger's clock), no longer and no shorter."""
    clock = FrozenClock(100.0)
    store = MemoryWindowStore(clock=clock.now)
    await store.open(APPID, "o_a", window("event", NOW), memory=MEMORY)
    assert (len(store), repr(store)) == (1, "MemoryWindowStore(1 users)")
    clock.advance(60 + MEMORY - 0.5)
    assert len(store) == 1
    clock.advance(0.5)
    assert (len(store), repr(store)) == (0, "MemoryWindowStore(0 users)")


async def test_the_memory_store_keeps_a_spent_or_corrected_record_for_its_lifetime() -> None:
    clock = FrozenClock(100.0)
    store = MemoryWindowStore(clock=clock.now)
    await store.open(APPID, "o_a", window("event", NOW), memory=MEMORY)
    clock.advance(10)
    spend = await store.spend(APPID, "o_a", now=NOW + 10, reserve=True)
    assert spend.outcome is SpendOutcome.CHARGED
    assert await store.refund(APPID, "o_a", window="event", opened_at=NOW) is True
    clock.advance(60 + MEMORY - 10.5)
    assert len(store) == 1
    clock.advance(0.5)
    assert len(store) == 0
    await store.correct(APPID, "o_b", errcode=OUTSIDE_WINDOW, before=NOW, now=NOW, memory=MEMORY)
    clock.advance(MEMORY - 0.5)
    assert len(store) == 1
    clock.advance(0.5)
    assert len(store) == 0
    # A record with no lifetime left (no memory, nothing open) takes no room at all.
    await store.correct(APPID, "o_c", errcode=OUTSIDE_WINDOW, before=NOW, now=NOW, memory=0.0)
    assert len(store) == 0


async def test_a_record_past_its_lifetime_is_gone_even_where_the_map_still_has_it() -> None:
    """The ledger's clock decides: a record whose ``keep_until`` is past is absent, whatever
    the map's own clock says (the two clocks need not agree)."""
    store = MemoryWindowStore(clock=FrozenClock(100.0).now)
    await store.open(APPID, "o_a", window("event", NOW), memory=MEMORY)
    later = NOW + 60 + MEMORY
    assert len(store) == 1
    assert await store.get(APPID, "o_a", now=later) is None
    assert (await store.spend(APPID, "o_a", now=later, reserve=True)).outcome is (
        SpendOutcome.UNKNOWN
    )
    assert [o async for o, _ in store.records(APPID, now=later)] == []
    # A window opened after the old record's lifetime starts a new record.
    fresh = window("message", later, left=5)
    assert await store.open(APPID, "o_a", fresh, memory=MEMORY) is True
    record = await store.get(APPID, "o_a", now=later)
    assert record is not None
    assert record.windows == (fresh,)


async def test_the_memory_store_is_bounded() -> None:
    store = MemoryWindowStore(max_entries=2)
    for openid in ("o_a", "o_b", "o_c"):
        await store.open(APPID, openid, window("event", NOW), memory=MEMORY)
    assert len(store) == 2
    assert await store.get(APPID, "o_a", now=NOW) is None  # written longest ago: unknown
    assert await store.get(APPID, "o_c", now=NOW) is not None


async def test_an_accepted_send_with_nothing_left_drops_the_record_at_once() -> None:
    store = MemoryWindowStore(clock=FrozenClock(100.0).now)
    await store.open(APPID, "o_a", window("event", NOW, left=0), memory=MEMORY)
    assert len(store) == 1
    spend = await store.spend(APPID, "o_a", now=NOW, reserve=False)
    assert spend == attrs.evolve(spend, outcome=SpendOutcome.FORGOTTEN, window=None, record=None)
    assert len(store) == 0
