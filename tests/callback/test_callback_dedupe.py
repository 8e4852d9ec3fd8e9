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
    DuplicateState,
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
    await store.mark_done("other", 10)
    assert len(store) == 2


async def test_entries_expire_and_keep_their_first_expiry() -> None:
    clock = FakeClock()
    store = MemoryDuplicateStore(clock=clock)
    assert await store.seen("k", 10) is None
    clock.now += 9.9
    assert await store.seen("k", 10) == "in_progress"  # does not extend the expiry
    clock.now += 0.1
    assert await store.seen("k", 10) is None  # expired at exactly 10 s: a new push
    assert len(store) == 1


async def test_done_entries_last_their_own_ttl() -> None:
    clock = FakeClock()
    store = MemoryDuplicateStore(clock=clock)
    await store.seen("k", 30)
    clock.now += 20
    await store.mark_done("k", 300)  # 300 s from now, not from the claim
    clock.now += 299.9
    assert await store.seen("k", 30) == "done"
    clock.now += 0.1
    assert await store.seen("k", 30) is None


async def test_expired_entries_are_swept() -> None:
    clock = FakeClock()
    store = MemoryDuplicateStore(clock=clock)
    for i in range(100):
        await store.seen(f"k{i}", 5)
    await store.mark_done("k0", 5)  # moved behind the others: still swept in order
    clock.now += 6
    await store.seen("fresh", 5)
    assert len(store) == 1


async def test_the_store_is_bounded_oldest_first() -> None:
    store = MemoryDuplicateStore(max_entries=3)
    for key in "abcd":
        assert await store.seen(key, 60) is None
    assert len(store) == 3
    assert await store.seen("a", 60) is None  # "a" was dropped (and is now back)
    assert await store.seen("d", 60) == "in_progress"
    await store.mark_done("c", 60)  # the latest write: "d" is now the oldest
    await store.seen("e", 60)
    assert await store.seen("c", 60) == "done"
    assert await store.seen("d", 60) is None


def test_store_bound_is_validated() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValidationError):
            MemoryDuplicateStore(max_entries=bad)


# --------------------------------------------------------------------------- deduplicator


class RedisLikeStore:
    """What a Redis store does: SET key in_progress NX PX, GET, SET key done PX, DEL."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.calls: list[tuple[str, str, int | None]] = []

    async def seen(self, key: str, ttl: float) -> DuplicateState | None:
        self.calls.append(("SET NX PX", key, max(1, math.ceil(ttl * 1000))))
        if key not in self.data:
            self.data[key] = "in_progress"
            return None
        return "done" if self.data[key] == "done" else "in_progress"

    async def mark_done(self, key: str, ttl: float) -> None:
        await anyio.lowlevel.checkpoint()  # a network round trip: a cancellation point
        self.calls.append(("SET PX", key, max(1, math.ceil(ttl * 1000))))
        self.data[key] = "done"

    async def forget(self, key: str) -> None:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("DEL", key, None))
        self.data.pop(key, None)


async def test_deduplicator_claims_marks_and_releases_with_namespace_and_ttls() -> None:
    store = RedisLikeStore()
    checked: DuplicateStore = store  # the protocol is satisfied structurally
    dedupe = Deduplicator(checked, ttl=200, in_progress_ttl=20, namespace="app1:")
    message = parse(text_push(msg_id=9))
    assert await dedupe.claim(message) is None
    assert await dedupe.claim(parse(text_push(msg_id=9))) == "in_progress"
    await dedupe.mark_done(message)
    assert await dedupe.claim(message) == "done"
    await dedupe.forget(message)
    key = "app1:gh_account0001:msg:9"
    assert store.calls == [
        ("SET NX PX", key, 20_000),
        ("SET NX PX", key, 20_000),
        ("SET PX", key, 200_000),
        ("SET NX PX", key, 20_000),
        ("DEL", key, None),
    ]


async def test_deduplicator_defaults_to_memory() -> None:
    dedupe = Deduplicator()
    assert isinstance(dedupe.store, MemoryDuplicateStore)
    assert (dedupe.ttl, dedupe.in_progress_ttl) == (300, 30)
    assert dedupe.namespace == "callback:"  # after the store's prefix (Redis: wechat_kf:)
    message = parse(event_push("subscribe"))
    assert [await dedupe.claim(message) for _ in range(2)] == [None, "in_progress"]
    await dedupe.mark_done(message)
    assert await dedupe.claim(message) == "done"
    assert "Deduplicator(store=" in repr(dedupe)
    assert "in_progress_ttl=30" in repr(dedupe)


async def test_the_in_progress_claim_is_bounded() -> None:
    # A worker that crashed mid-push (no mark_done, no forget) blocks its retries for
    # in_progress_ttl at most; a handled push is remembered for ttl.
    clock = FakeClock()
    dedupe = Deduplicator(MemoryDuplicateStore(clock=clock), ttl=300, in_progress_ttl=30)
    crashed, handled = parse(text_push(msg_id=1)), parse(text_push(msg_id=2))
    assert await dedupe.claim(crashed) is None
    assert await dedupe.claim(handled) is None
    await dedupe.mark_done(handled)
    clock.now += 29.9
    assert await dedupe.claim(crashed) == "in_progress"
    clock.now += 0.1
    assert await dedupe.claim(crashed) is None  # the next retry is processed
    assert await dedupe.claim(handled) == "done"


@pytest.mark.parametrize("step", ["mark_done", "forget"])
async def test_store_updates_run_even_when_cancelled(step: str) -> None:
    store = RedisLikeStore()
    dedupe = Deduplicator(store)
    message = parse(text_push(msg_id=1))
    await dedupe.claim(message)
    with anyio.CancelScope() as scope:
        scope.cancel()
        await getattr(dedupe, step)(message)
    assert store.data == (
        {} if step == "forget" else {dedupe.namespace + dedupe_key(message): "done"}
    )


@pytest.mark.parametrize("field", ["ttl", "in_progress_ttl"])
def test_ttls_are_validated(field: str) -> None:
    for bad in (0, -1, math.nan, math.inf, True):
        with pytest.raises(ValidationError) as info:
            Deduplicator(**{field: bad})  # type: ignore[arg-type]
        assert info.value.field == field
