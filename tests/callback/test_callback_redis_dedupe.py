"""RedisDuplicateStore on a real redis-server: the contract, two workers sharing it, outages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio

from tests.callback.callback_fakes import APPID, KEY, OPENID, TOKEN, FakeWeChat, text_push
from tests.redis_server import RedisServer, running_redis
from wechat_kf import StoreError
from wechat_kf.callback import (
    CallbackEndpoint,
    CallbackHandler,
    DuplicateEntry,
    DuplicateStoreError,
    HTTPAnswer,
    Incoming,
    RedisDuplicateStore,
    Reply,
    TextReply,
)
from wechat_kf.testing.duplicate_store_contract import REPLIES, DuplicateStoreContract

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio


class TestRedisDuplicateStore(DuplicateStoreContract):
    """The contract on a real redis-server, real TTLs (about 2.5 s of sleeping in all)."""

    @pytest.fixture
    async def store(self, redis_server: RedisServer) -> AsyncIterator[RedisDuplicateStore]:
        client = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=2)
        yield RedisDuplicateStore(client)
        await client.aclose()


@pytest.mark.parametrize("reply", REPLIES)
async def test_replies_survive_a_client_decoding_responses(
    redis_server: RedisServer, reply: bytes
) -> None:
    # decode_responses=True hands back str: the store gives the exact bytes back anyway.
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store = RedisDuplicateStore(client)
        key = f"callback:test:{uuid.uuid4().hex}"
        await store.mark_done(key, reply, 60)
        assert await store.claim(key, 60) == DuplicateEntry("done", reply)
    finally:
        await client.aclose()


async def test_two_processes_worth_of_stores_share_entries(redis_server: RedisServer) -> None:
    one = redis.asyncio.Redis.from_url(redis_server.url)
    two = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        first, second = RedisDuplicateStore(one), RedisDuplicateStore(two)
        key = f"wechat_kf:test:{uuid.uuid4().hex}"
        reply = "<xml><Content><![CDATA[您好]]></Content></xml>".encode()
        assert await first.claim(key, 60) is None
        assert await second.claim(key, 60) == DuplicateEntry("in_progress")
        await first.mark_done(key, reply, 60)
        assert await second.claim(key, 60) == DuplicateEntry("done", reply)
    finally:
        await one.aclose()
        await two.aclose()


async def test_the_commands_and_values_in_redis(redis_server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        store = RedisDuplicateStore(client)
        key = f"callback:test:{uuid.uuid4().hex}"
        name = f"wechat_kf:{key}"  # the store's prefix, then the deduplicator's key
        assert await store.claim(key, 30) is None
        assert await client.get(name) == b"in_progress"
        assert 25_000 < await client.pttl(name) <= 30_000
        await store.mark_done(key, b"<xml>r</xml>", 300)
        assert await client.get(name) == b"done:<xml>r</xml>"
        assert 295_000 < await client.pttl(name) <= 300_000
        assert await store.claim(key, 30) == DuplicateEntry("done", b"<xml>r</xml>")
        assert 295_000 < await client.pttl(name) <= 300_000  # a retry's claim changes nothing
        await store.forget(key)
        assert await client.exists(name) == 0
        # a key another writer set (an older release wrote b"1"): never acknowledged as done
        await client.set(name, b"1", px=60_000)
        assert await store.claim(key, 30) == DuplicateEntry("in_progress")
        # the previous release's done marker, which kept no reply, answered success
        await client.set(name, b"done", px=60_000)
        assert await store.claim(key, 30) == DuplicateEntry("done", b"success")
    finally:
        await client.aclose()


async def test_from_url_prefix_and_the_shared_store_conventions(redis_server: RedisServer) -> None:
    async with RedisDuplicateStore.from_url(redis_server.url, prefix="app7:") as store:
        assert store.timeout == 2.0  # the duplicate store's own default
        assert await store.claim("callback:k", 30) is None
        assert await store.redis.get("app7:callback:k") == b"in_progress"
        assert repr(store) == "RedisDuplicateStore(prefix='app7:', client=Redis)"
    with pytest.raises(ValueError, match="prefix"):
        RedisDuplicateStore(redis.asyncio.Redis(), prefix="a{b}:")
    # Every store's error is a StoreError: one except clause catches any store outage.
    assert issubclass(DuplicateStoreError, StoreError)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gets_a_clear_typed_error(redis_server: RedisServer) -> None:
    store = RedisDuplicateStore(redis.asyncio.Redis.from_url(redis_server.url))
    with pytest.raises(DuplicateStoreError, match="asyncio only"):
        await store.claim("callback:k", 30)


async def test_redis_down_is_a_typed_error(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        url = server.url
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        with pytest.raises(DuplicateStoreError, match="failed"):
            await RedisDuplicateStore(client).claim("k", 10)
    finally:
        await client.aclose()


async def test_hung_redis_is_bounded(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            await client.ping()
            server.pause()
            try:
                with pytest.raises(DuplicateStoreError, match=r"longer than 0\.3 s"):
                    await RedisDuplicateStore(client, timeout=0.3).claim("k", 10)
            finally:
                server.resume()
        finally:
            await client.aclose()


class WatchedRedisStore(RedisDuplicateStore):
    """The Redis store, counting the claims that reached it."""

    claims = 0

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        self.claims += 1
        return await super().claim(key, ttl)


async def test_a_retry_at_another_worker_waits_for_the_first_and_gets_its_reply(
    redis_server: RedisServer,
) -> None:
    # Two worker processes' endpoints on one Redis: the retry lands on the other worker while
    # the first is still handling the push; it polls Redis and answers the first's reply.
    entered, release = anyio.Event(), anyio.Event()
    calls: list[Incoming] = []

    async def slow(incoming: Incoming) -> Reply | None:
        calls.append(incoming)
        entered.set()
        await release.wait()
        return TextReply(content="from the first worker")

    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    one = redis.asyncio.Redis.from_url(redis_server.url)
    two = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        first = CallbackEndpoint(handler, slow, deduplicator=RedisDuplicateStore(one))
        watched = WatchedRedisStore(two)
        second = CallbackEndpoint(handler, slow, deduplicator=watched)
        fake = FakeWeChat(encoding_aes_key=KEY)
        request = fake.push(text_push(msg_id=int(uuid.uuid4().int % 10**18)))
        answers: dict[str, HTTPAnswer] = {}

        async def one_try(name: str, endpoint: CallbackEndpoint) -> None:
            answers[name] = await endpoint.answer("POST", *request)

        async with anyio.create_task_group() as group:
            group.start_soon(one_try, "first", first)
            await entered.wait()
            group.start_soon(one_try, "retry", second)
            # the retry found the push in progress, and polled again
            while watched.claims < 2:  # noqa: ASYNC110 - claims reach Redis, not this loop
                await anyio.sleep(0.01)
            assert answers == {}  # waiting, not refused
            release.set()
        assert answers["retry"] == answers["first"]
        assert b"from the first worker" in fake.open_reply(answers["retry"].body)
        assert len(calls) == 1
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_slow_bot_answer_runs_once_across_workers(redis_server: RedisServer) -> None:
    # Two workers' bots (CallbackEndpoint with wechat=) on one Redis: the first try answers
    # success at its deadline and goes on thinking; WeChat's retries land on the other worker,
    # before and after that deadline, and get success without running the handler again.
    from wechat_kf.testing import FakeWeChat as FakeAPI
    from wechat_kf.testing import VirtualClock

    api = FakeAPI()
    api.user_says(OPENID)
    clock = VirtualClock(follow=api.clock)
    calls: list[Incoming] = []

    async def slow(incoming: Incoming) -> str:
        calls.append(incoming)
        await clock.sleep(8)
        return "answered by the first worker"

    handler = CallbackHandler(token=TOKEN, appid=APPID, encoding_aes_key=KEY)
    one = redis.asyncio.Redis.from_url(redis_server.url)
    two = redis.asyncio.Redis.from_url(redis_server.url)
    request = FakeWeChat(encoding_aes_key=KEY).push(
        text_push(msg_id=int(uuid.uuid4().int % 10**18))
    )
    try:
        async with api.client() as wx, api.client() as wx2:
            first = CallbackEndpoint(
                handler, slow, deduplicator=RedisDuplicateStore(one), wechat=wx, clock=clock
            )
            watched = WatchedRedisStore(two)
            second = CallbackEndpoint(handler, slow, deduplicator=watched, wechat=wx2, clock=clock)
            answers: dict[str, HTTPAnswer] = {}

            async def one_try(name: str, endpoint: CallbackEndpoint) -> None:
                answers[name] = await endpoint.answer("POST", *request)

            async with first.running(), second.running():
                async with anyio.create_task_group() as group:
                    group.start_soon(one_try, "first", first)
                    await clock.sleeping(2)
                    group.start_soon(one_try, "early retry", second)
                    while watched.claims < 2:  # noqa: ASYNC110 - polling Redis, not this loop
                        await anyio.sleep(0.01)
                    clock.advance(4)  # the first worker's deadline: success, stored in Redis
                for n in range(3):
                    clock.advance(1)
                    answers[f"retry {n}"] = await second.answer("POST", *request)
                clock.advance(1)
                await first.wait_idle()
        assert {answer.body for answer in answers.values()} == {b"success"}
        assert len(answers) == 5
        assert len(calls) == 1
        assert [body["text"]["content"] for body in api.sent_to(OPENID)] == [
            "answered by the first worker"
        ]
    finally:
        await one.aclose()
        await two.aclose()
