"""Duplicate detection: keys, the memory store (contract, TTL, bound), the deduplicator."""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel
import pytest

from tests.callback.callback_fakes import APPID, TOKEN, FakeWeChat, event_push, push_xml, text_push
from wechat_kf import ValidationError
from wechat_kf.callback import (
    CallbackHandler,
    Deduplicator,
    DuplicateEntry,
    DuplicateStore,
    Incoming,
    MemoryDuplicateStore,
    dedupe_key,
)
from wechat_kf.testing import VirtualClock
from wechat_kf.testing.duplicate_store_contract import DuplicateStoreContract

pytestmark = pytest.mark.anyio

HANDLER = CallbackHandler(token=TOKEN, appid=APPID)
IN_PROGRESS = DuplicateEntry("in_progress")
DONE = DuplicateEntry("done", b"success")


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


def test_a_message_without_msg_id_falls_back_to_user_and_time() -> None:
    # Real text pushes without <MsgId> exist: WeChat's advice is FromUserName + CreateTime.
    fields: dict[str, str | int] = {
        "ToUserName": "gh",
        "FromUserName": "o",
        "CreateTime": 5,
        "MsgType": "text",
        "Content": "hi",
    }
    assert dedupe_key(parse(push_xml(fields))) == "gh:o:5:text"
    assert dedupe_key(parse(push_xml({**fields, "MsgId": ""}))) == "gh:o:5:text"
    assert dedupe_key(parse(push_xml({**fields, "CreateTime": 6}))) == "gh:o:6:text"


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
    """The contract on the memory store, on a fake clock: nothing sleeps."""

    @pytest.fixture
    def clock(self) -> VirtualClock:
        return VirtualClock()

    @pytest.fixture
    def store(self, clock: VirtualClock) -> MemoryDuplicateStore:
        return MemoryDuplicateStore(clock=clock)


async def test_len_counts_live_entries() -> None:
    store = MemoryDuplicateStore()
    await store.claim("k", 10)
    await store.claim("k", 10)
    await store.claim("other", 10)
    await store.mark_done("other", b"success", 10)
    assert len(store) == 2
    assert repr(store) == "MemoryDuplicateStore(2 keys)"


async def test_entries_expire_at_their_ttl_exactly() -> None:
    clock = FakeClock()
    store = MemoryDuplicateStore(clock=clock)
    assert await store.claim("k", 10) is None
    clock.now += 9.9
    assert await store.claim("k", 10) == IN_PROGRESS
    clock.now += 0.1
    assert await store.claim("k", 10) is None  # expired at exactly 10 s: a new push
    assert len(store) == 1


async def test_expired_entries_are_swept() -> None:
    clock = FakeClock()
    store = MemoryDuplicateStore(clock=clock)
    for i in range(100):
        await store.claim(f"k{i}", 5)
    await store.mark_done("k0", b"success", 5)  # moved behind the others: still swept in order
    clock.now += 6
    await store.claim("fresh", 5)
    assert len(store) == 1


async def test_the_store_is_bounded_oldest_first() -> None:
    store = MemoryDuplicateStore(max_entries=3)
    for key in "abcd":
        assert await store.claim(key, 60) is None
    assert len(store) == 3
    assert await store.claim("a", 60) is None  # "a" was dropped (and is now back)
    assert await store.claim("d", 60) == IN_PROGRESS
    await store.mark_done("c", b"success", 60)  # the latest write: "d" is now the oldest
    await store.claim("e", 60)
    assert await store.claim("c", 60) == DONE
    assert await store.claim("d", 60) is None


def test_store_bound_is_validated() -> None:
    for bad in (0, -1, True):
        with pytest.raises(ValidationError):
            MemoryDuplicateStore(max_entries=bad)


def test_entries() -> None:
    assert IN_PROGRESS.reply == b""
    assert not IN_PROGRESS.done
    assert DONE.done
    assert DuplicateEntry("done", b"x") != DuplicateEntry("done", b"y")


# --------------------------------------------------------------------------- deduplicator


class RedisLikeStore:
    """What a Redis store does: claim script, SET key done:reply PX, DEL; each a round trip."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.calls: list[tuple[str, str, int | None]] = []

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        await anyio.lowlevel.checkpoint()
        self.calls.append(("CLAIM", key, max(1, math.ceil(ttl * 1000))))
        if key not in self.data:
            self.data[key] = b"in_progress"
            return None
        value = self.data[key]
        return DuplicateEntry("done", value[5:]) if value.startswith(b"done:") else IN_PROGRESS

    async def mark_done(self, key: str, reply: bytes, ttl: float) -> None:
        await anyio.lowlevel.checkpoint()  # a network round trip: a cancellation point
        self.calls.append(("SET PX", key, max(1, math.ceil(ttl * 1000))))
        self.data[key] = b"done:" + reply

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
    assert await dedupe.claim(parse(text_push(msg_id=9))) == IN_PROGRESS
    await dedupe.mark_done(message, b"<xml>reply</xml>")
    assert await dedupe.claim(message) == DuplicateEntry("done", b"<xml>reply</xml>")
    await dedupe.forget(message)
    key = "app1:gh_account0001:msg:9"
    assert dedupe.key(message) == key
    assert store.calls == [
        ("CLAIM", key, 20_000),
        ("CLAIM", key, 20_000),
        ("SET PX", key, 200_000),
        ("CLAIM", key, 20_000),
        ("DEL", key, None),
    ]


async def test_deduplicator_defaults_to_memory() -> None:
    dedupe = Deduplicator()
    assert isinstance(dedupe.store, MemoryDuplicateStore)
    assert (dedupe.ttl, dedupe.in_progress_ttl) == (300, 30)
    assert dedupe.namespace == "callback:"  # after the store's prefix (Redis: wechat_kf:)
    message = parse(event_push("subscribe"))
    assert [await dedupe.claim(message) for _ in range(2)] == [None, IN_PROGRESS]
    await dedupe.mark_done(message, b"success")
    assert await dedupe.claim(message) == DONE
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
    await dedupe.mark_done(handled, b"success")
    clock.now += 29.9
    assert await dedupe.claim(crashed) == IN_PROGRESS
    clock.now += 0.1
    assert await dedupe.claim(crashed) is None  # the next retry is processed
    assert await dedupe.claim(handled) == DONE


@pytest.mark.parametrize("outcome", ["done", "released"])
async def test_a_waiting_claim_is_woken_by_the_first_try(outcome: str) -> None:
    dedupe = Deduplicator()
    message = parse(text_push(msg_id=3))
    assert await dedupe.claim(message) is None  # the first try
    results: list[DuplicateEntry | None] = []
    waiting = anyio.Event()

    async def retry() -> None:
        waiting.set()
        results.append(await dedupe.claim(message, wait=60))

    async with anyio.create_task_group() as group:
        group.start_soon(retry)
        await waiting.wait()
        await anyio.lowlevel.checkpoint()
        assert results == []  # still waiting for the first try
        if outcome == "done":
            await dedupe.mark_done(message, b"<xml>first</xml>")
        else:
            await dedupe.forget(message)
        # done: the retry gets the first try's reply; released: the retry now holds the push
        expected = DuplicateEntry("done", b"<xml>first</xml>") if outcome == "done" else None
        await anyio.wait_all_tasks_blocked()
        assert results == [expected], "not woken at once: the retry polled the store"
    assert results == [expected]
    assert await dedupe.claim(message) == (
        DuplicateEntry("done", b"<xml>first</xml>") if outcome == "done" else IN_PROGRESS
    )


async def test_a_waiting_claim_polls_a_push_another_worker_handles() -> None:
    # Two deduplicators on one store: two worker processes on one Redis, say.
    store = RedisLikeStore()
    first_worker, second_worker = Deduplicator(store), Deduplicator(store)
    message = parse(text_push(msg_id=4))
    assert await first_worker.claim(message) is None
    results: list[DuplicateEntry | None] = []

    async def retry() -> None:
        results.append(await second_worker.claim(message, wait=60))

    async with anyio.create_task_group() as group:
        group.start_soon(retry)
        while store.calls.count(("CLAIM", first_worker.key(message), 30_000)) < 2:
            await anyio.lowlevel.checkpoint()  # the retry read the store once and is now polling it
        await first_worker.mark_done(message, b"success")
    assert results == [DONE]


async def test_a_waiting_claim_gives_up_after_its_wait() -> None:
    dedupe = Deduplicator()
    message = parse(text_push(msg_id=5))
    assert await dedupe.claim(message) is None
    assert await dedupe.claim(message, wait=0.05) == IN_PROGRESS
    assert await dedupe.claim(message, wait=0) == IN_PROGRESS  # no wait: at once


class CountingStore(RedisLikeStore):
    def claims(self) -> int:
        return sum(call[0] == "CLAIM" for call in self.calls)


async def test_polling_another_workers_push_backs_off_until_the_wait_ends() -> None:
    time = VirtualClock(start=0.0)
    store = CountingStore()
    first = Deduplicator(store)
    retry = Deduplicator(store, clock=time)
    message = parse(text_push(msg_id=6))
    assert await first.claim(message) is None
    results: list[DuplicateEntry | None] = []
    reads: list[tuple[float, int]] = []

    async def wait_one_second() -> None:
        results.append(await retry.claim(message, wait=1.0))

    async with anyio.create_task_group() as group:
        group.start_soon(wait_one_second)
        for moment in (0.0, 0.051, 0.151, 0.351, 0.751, 0.99):
            await time.elapse(moment - time())
            reads.append((moment, store.claims() - 1))
        assert results == []
        await time.elapse(0.01)
    # Reads at 0, 0.05, 0.15, 0.35, 0.75 (doubling from 50 ms, at most 400 ms apart), then at
    # the end of the wait (1.0 s): still in progress.
    assert reads == [(0.0, 1), (0.051, 2), (0.151, 3), (0.351, 4), (0.751, 5), (0.99, 5)]
    assert store.claims() - 1 == 6
    assert results == [IN_PROGRESS]


async def test_no_wait_reads_the_store_once() -> None:
    store = CountingStore()
    dedupe = Deduplicator(store)
    message = parse(text_push(msg_id=7))
    assert await dedupe.claim(message) is None
    assert await Deduplicator(store).claim(message) == IN_PROGRESS
    assert await Deduplicator(store).claim(message, wait=0) == IN_PROGRESS
    assert store.claims() == 3


async def test_waiting_for_this_deduplicators_own_try_ends_with_the_wait() -> None:
    time = VirtualClock(start=0.0)
    dedupe = Deduplicator(clock=time)
    message = parse(text_push(msg_id=8))
    assert await dedupe.claim(message) is None  # the first try never finishes
    results: list[DuplicateEntry | None] = []

    async def retry() -> None:
        results.append(await dedupe.claim(message, wait=2.0))

    async with anyio.create_task_group() as group:
        group.start_soon(retry)
        await time.elapse(1.99)
        assert results == []
        await time.elapse(0.01)
        assert results == [IN_PROGRESS]
    await dedupe.forget(message)
    assert await dedupe.claim(message) is None


async def test_finishing_a_push_this_deduplicator_did_not_claim_is_no_error() -> None:
    store = RedisLikeStore()
    one, other = Deduplicator(store), Deduplicator(store)
    message = parse(text_push(msg_id=9))
    assert await one.claim(message) is None
    await other.mark_done(message, b"success")  # another worker's deduplicator
    await other.forget(message)
    await one.forget(message)
    assert await one.claim(message) is None


@pytest.mark.parametrize("step", ["mark_done", "forget"])
async def test_store_updates_run_even_when_cancelled(step: str) -> None:
    store = RedisLikeStore()
    dedupe = Deduplicator(store)
    message = parse(text_push(msg_id=1))
    await dedupe.claim(message)
    with anyio.CancelScope() as scope:
        scope.cancel()
        if step == "mark_done":
            await dedupe.mark_done(message, b"success")
        else:
            await dedupe.forget(message)
    assert store.data == ({} if step == "forget" else {dedupe.key(message): b"done:success"})


@pytest.mark.parametrize("field", ["ttl", "in_progress_ttl"])
def test_ttls_are_validated(field: str) -> None:
    for bad in (0, -1, math.nan, math.inf, True):
        with pytest.raises(ValidationError) as info:
            Deduplicator(**{field: bad})  # type: ignore[arg-type]
        assert (info.value.field, info.value.value) == (field, bad)
        assert info.value.limit == "must be a positive number of seconds"
    assert getattr(Deduplicator(**{field: 0.5}), field) == 0.5  # type: ignore[arg-type]
