"""Duplicate detection: keys, the memory store (TTL, bound, atomicity), the deduplicator."""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel
import pytest

from tests.callback.callback_fakes import APPID, TOKEN, FakeWeChat, event_push, push_xml, text_push
from tests.callback.duplicate_store_contract import DuplicateStoreContract
from wechat_kf import ValidationError
from wechat_kf.callback import (
    CallbackHandler,
    Deduplicator,
    DuplicateStore,
    Incoming,
    MemoryDuplicateStore,
    dedupe_key,
)

pytestmark = pytest.mark.anyio

HANDLER = CallbackHandler(token=TOKEN, appid=APPID)


def parse(body: bytes) -> Incoming:
    return HANDLER.parse(*FakeWeChat().push(body))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- keys


def test_message_key_is_the_msg_id() -> None:
    assert dedupe_key(parse(text_push(msg_id=42))) == "gh_account0001:msg:42"
    # a retry carries the same MsgId, whatever else differs
    assert dedupe_key(parse(text_push("other", msg_id=42))) == "gh_account0001:msg:42"


def test_event_key_is_user_time_and_event() -> None:
    create = parse(event_push("kf_create_session", KfAccount="a@b"))
    close = parse(event_push("kf_close_session", KfAccount="a@b"))
    assert dedupe_key(create) == (
        "gh_account0001:oUser_openid_0000000000001:1700000000:kf_create_session"
    )
    assert dedupe_key(close) != dedupe_key(create)  # same user, same second, other event


def test_unknown_message_uses_its_msg_id_when_present() -> None:
    fields: dict[str, str | int] = {
        "ToUserName": "gh",
        "FromUserName": "o",
        "CreateTime": 5,
        "MsgType": "new",
    }
    assert dedupe_key(parse(push_xml({**fields, "MsgId": 77}))) == "gh:msg:77"
    assert dedupe_key(parse(push_xml(fields))) == "gh:o:5:new"


# --------------------------------------------------------------------------- memory store


class TestMemoryDuplicateStore(DuplicateStoreContract):
    @pytest.fixture
    def store(self) -> MemoryDuplicateStore:
        return MemoryDuplicateStore()


async def test_len_counts_live_entries() -> None:
    store = MemoryDuplicateStore()
    await store.seen("k", 10)
    await store.seen("k", 10)
    await store.seen("other", 10)
    assert len(store) == 2


async def test_entries_expire_and_keep_their_first_expiry() -> None:
    clock = FakeClock()
    store = MemoryDuplicateStore(clock=clock)
    assert not await store.seen("k", 10)
    clock.now += 9.9
    assert await store.seen("k", 10)  # does not extend the expiry
    clock.now += 0.1
    assert not await store.seen("k", 10)  # expired at exactly 10 s: a new push
    assert len(store) == 1


async def test_expired_entries_are_swept() -> None:
    clock = FakeClock()
    store = MemoryDuplicateStore(clock=clock)
    for i in range(100):
        await store.seen(f"k{i}", 5)
    clock.now += 6
    await store.seen("fresh", 5)
    assert len(store) == 1


async def test_the_store_is_bounded_oldest_first() -> None:
    store = MemoryDuplicateStore(max_entries=3)
    for key in "abcd":
        assert not await store.seen(key, 60)
    assert len(store) == 3
    assert not await store.seen("a", 60)  # "a" was dropped (and is now back)
    assert await store.seen("d", 60)


def test_store_bound_is_validated() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValidationError):
            MemoryDuplicateStore(max_entries=bad)


# --------------------------------------------------------------------------- deduplicator


class SetNXStore:
    """What a Redis store does: SET key 1 NX PX ttl_ms, and DEL."""

    def __init__(self) -> None:
        self.data: dict[str, int] = {}
        self.calls: list[tuple[str, str, int | None]] = []

    async def seen(self, key: str, ttl: float) -> bool:
        px = max(1, math.ceil(ttl * 1000))
        self.calls.append(("SET NX PX", key, px))
        if key in self.data:
            return True
        self.data[key] = px
        return False

    async def forget(self, key: str) -> None:
        await anyio.lowlevel.checkpoint()  # a network round trip: a cancellation point
        self.calls.append(("DEL", key, None))
        self.data.pop(key, None)


async def test_deduplicator_marks_retries_with_namespace_and_ttl() -> None:
    store = SetNXStore()
    checked: DuplicateStore = store  # the protocol is satisfied structurally
    dedupe = Deduplicator(checked, ttl=20, namespace="app1:")
    message = parse(text_push(msg_id=9))
    assert not await dedupe.is_duplicate(message)
    assert await dedupe.is_duplicate(parse(text_push(msg_id=9)))
    await dedupe.forget(message)
    assert store.calls == [
        ("SET NX PX", "app1:gh_account0001:msg:9", 20_000),
        ("SET NX PX", "app1:gh_account0001:msg:9", 20_000),
        ("DEL", "app1:gh_account0001:msg:9", None),
    ]


async def test_deduplicator_defaults_to_memory() -> None:
    dedupe = Deduplicator()
    assert isinstance(dedupe.store, MemoryDuplicateStore)
    assert dedupe.ttl == 300
    assert dedupe.namespace == "wechat_kf:callback:"
    message = parse(event_push("subscribe"))
    assert [await dedupe.is_duplicate(message) for _ in range(3)] == [False, True, True]
    assert "Deduplicator(store=" in repr(dedupe)


async def test_forget_runs_even_when_cancelled() -> None:
    store = SetNXStore()
    dedupe = Deduplicator(store)
    message = parse(text_push(msg_id=1))
    await dedupe.is_duplicate(message)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await dedupe.forget(message)
    assert store.data == {}


def test_ttl_is_validated() -> None:
    for bad in (0, -1, math.nan, math.inf, True):
        with pytest.raises(ValidationError):
            Deduplicator(ttl=bad)
