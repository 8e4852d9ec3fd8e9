"""The memory side of the store convention: ``ExpiringMap`` (fake time, no sleeps)."""

from __future__ import annotations

import threading

import pytest

from wechat_kf import StoreError, TokenStoreError, ValidationError, WeChatError
from wechat_kf._stores import ExpiringMap
from wechat_kf.callback import DuplicateStoreError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_live_exactly_their_ttl() -> None:
    clock = Clock()
    entries: ExpiringMap[str, int] = ExpiringMap(max_entries=10, clock=clock)
    entries.set("a", 1, 10)
    assert entries.get("a") == 1
    assert entries.expiry("a") == 1010
    clock.now = 1009.999
    assert entries.get("a") == 1
    clock.now = 1010  # the boundary: expired
    assert entries.get("a") is None
    assert entries.expiry("a") is None
    assert len(entries) == 0


def test_setdefault_claims_once_until_expiry() -> None:
    clock = Clock()
    entries: ExpiringMap[str, str] = ExpiringMap(max_entries=10, clock=clock)
    assert entries.setdefault("k", "first", 5) is None
    assert entries.setdefault("k", "second", 5) == "first"
    clock.now += 5
    assert entries.setdefault("k", "third", 5) is None
    assert entries.get("k") == "third"


def test_a_rewrite_replaces_value_and_expiry() -> None:
    clock = Clock()
    entries: ExpiringMap[str, str] = ExpiringMap(max_entries=10, clock=clock)
    entries.set("k", "short", 1)
    entries.set("k", "long", 100)
    clock.now += 50
    assert entries.get("k") == "long"


def test_the_oldest_write_goes_first_past_the_bound() -> None:
    entries: ExpiringMap[int, int] = ExpiringMap(max_entries=3, clock=Clock())
    for key in range(5):
        entries.set(key, key, 60)
    assert [key for key, _ in entries.items()] == [2, 3, 4]
    entries.set(2, 20, 60)  # rewritten: now the newest
    entries.set(5, 5, 60)
    assert dict(entries.items()) == {4: 4, 2: 20, 5: 5}


def test_expired_entries_are_swept_as_new_ones_arrive() -> None:
    clock = Clock()
    entries: ExpiringMap[int, int] = ExpiringMap(max_entries=100, clock=clock)
    for key in range(50):
        entries.set(key, key, 1)
    clock.now += 2
    entries.set(99, 99, 1)
    assert len(entries._entries) == 1  # the 50 expired ones went, not just past the bound


def test_a_long_lived_entry_never_shelters_an_expired_one_from_lookups() -> None:
    clock = Clock()
    entries: ExpiringMap[str, int] = ExpiringMap(max_entries=10, clock=clock)
    entries.set("long", 1, 100)
    entries.set("short", 2, 1)
    clock.now += 2
    assert entries.get("short") is None
    assert entries.pop("short") is None
    assert dict(entries.items()) == {"long": 1}


def test_an_entry_behind_a_live_one_is_gone_at_its_exact_expiry() -> None:
    # The sweep stops at the first live entry in write order: items() still leaves out the
    # expired one written after it.
    clock = Clock()
    entries: ExpiringMap[str, int] = ExpiringMap(max_entries=10, clock=clock)
    entries.set("long", 1, 100)
    entries.set("short", 2, 1)
    clock.now = 1001
    assert dict(entries.items()) == {"long": 1}


def test_expiry_locked_keeps_an_entrys_lifetime_through_a_rewrite() -> None:
    clock = Clock()
    entries: ExpiringMap[str, int] = ExpiringMap(max_entries=10, clock=clock)
    entries.set("k", 1, 10)
    clock.now += 4
    with entries.lock:
        entries.set_locked("k", 2, entries.expiry_locked("k"))
    assert entries.expiry("k") == 1010
    assert entries.get("k") == 2


def test_pop_and_clear() -> None:
    entries: ExpiringMap[str, int] = ExpiringMap(max_entries=10, clock=Clock())
    entries.set("a", 1, 10)
    assert entries.pop("a") == 1
    assert entries.pop("a") is None
    entries.set("b", 2, 10)
    entries.clear()
    assert len(entries) == 0


def test_setdefault_is_atomic_across_threads() -> None:
    entries: ExpiringMap[str, int] = ExpiringMap(max_entries=10)
    winners: list[int] = []
    barrier = threading.Barrier(16)

    def claim(n: int) -> None:
        barrier.wait()
        if entries.setdefault("k", n, 60) is None:
            winners.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert entries.get("k") == winners[0]


def test_at_its_expiry_an_entry_is_gone_for_every_reader() -> None:
    # Each reader on its own: an earlier get() would drop the entry for the others.
    for read in (
        lambda m: m.expiry("a"),
        lambda m: m.pop("a"),
        lambda m: dict(m.items()),
        len,
    ):
        clock = Clock()
        entries: ExpiringMap[str, int] = ExpiringMap(max_entries=10, clock=clock)
        entries.set("a", 1, 10)
        clock.now = 1010
        assert read(entries) in (None, {}, 0)
        clock.now = 1009.5
        entries.set("a", 1, 0.5)  # expires at 1010 again
        clock.now = 1010
        assert read(entries) in (None, {}, 0)


def test_a_sweep_goes_on_past_every_expired_entry() -> None:
    clock = Clock()
    entries: ExpiringMap[int, int] = ExpiringMap(max_entries=100, clock=clock)
    for key in range(3):
        entries.set(key, key, 1 + key)  # expire at 1001, 1002, 1003
    entries.set(9, 9, 100)
    clock.now = 1003
    assert len(entries) == 1
    assert list(entries.items()) == [(9, 9)]


def test_one_entry_is_a_valid_bound() -> None:
    entries: ExpiringMap[str, int] = ExpiringMap(max_entries=1, clock=Clock())
    entries.set("a", 1, 10)
    entries.set("b", 2, 10)
    assert dict(entries.items()) == {"b": 2}
    assert repr(entries) == "ExpiringMap(entries=1, max_entries=1)"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_max_entries_is_validated(bad: object) -> None:
    with pytest.raises(ValidationError) as info:
        ExpiringMap(max_entries=bad)  # type: ignore[arg-type]
    assert (info.value.field, info.value.limit, info.value.value) == (
        "max_entries",
        "must be a positive int",
        bad,
    )


def test_every_store_error_is_a_store_error() -> None:
    assert issubclass(TokenStoreError, StoreError)
    assert issubclass(DuplicateStoreError, StoreError)
    assert issubclass(StoreError, WeChatError)
