"""RedisDuplicateStore on a real redis-server: the duplicate-store contract, and outages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio

from tests.callback.duplicate_store_contract import DuplicateStoreContract
from tests.redis_server import RedisServer, running_redis
from wechat_kf import StoreError
from wechat_kf.callback import DuplicateStoreError, RedisDuplicateStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(Path(tmp_path_factory.mktemp("redis-dedupe"))) as server:
        yield server


class TestRedisDuplicateStore(DuplicateStoreContract):
    @pytest.fixture
    async def store(self, redis_server: RedisServer) -> AsyncIterator[RedisDuplicateStore]:
        client = redis.asyncio.Redis.from_url(redis_server.url, socket_timeout=2)
        yield RedisDuplicateStore(client)
        await client.aclose()


async def test_two_processes_worth_of_stores_share_marks(redis_server: RedisServer) -> None:
    one = redis.asyncio.Redis.from_url(redis_server.url)
    two = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        first, second = RedisDuplicateStore(one), RedisDuplicateStore(two)
        key = f"wechat_kf:test:{uuid.uuid4().hex}"
        assert await first.seen(key, 60) is None
        assert await second.seen(key, 60) == "in_progress"
        await first.mark_done(key, 60)
        assert await second.seen(key, 60) == "done"  # also with decode_responses=True
    finally:
        await one.aclose()
        await two.aclose()


async def test_the_commands_and_values_in_redis(redis_server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        store = RedisDuplicateStore(client)
        key = f"callback:test:{uuid.uuid4().hex}"
        name = f"wechat_kf:{key}"  # the store's prefix, then the deduplicator's key
        assert await store.seen(key, 30) is None
        assert await client.get(name) == b"in_progress"
        assert 29_000 < await client.pttl(name) <= 30_000
        await store.mark_done(key, 300)
        assert await client.get(name) == b"done"
        assert 299_000 < await client.pttl(name) <= 300_000
        await store.forget(key)
        assert await client.exists(name) == 0
        # a key another writer set (an older release wrote b"1"): never acknowledged as done
        await client.set(name, b"1", px=60_000)
        assert await store.seen(key, 30) == "in_progress"
    finally:
        await client.aclose()


async def test_from_url_prefix_and_the_shared_store_conventions(redis_server: RedisServer) -> None:
    async with RedisDuplicateStore.from_url(redis_server.url, prefix="app7:") as store:
        assert store.timeout == 2.0  # the duplicate store's own default
        assert await store.seen("callback:k", 30) is None
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
        await store.seen("callback:k", 30)


async def test_redis_down_is_a_typed_error(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        url = server.url
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        with pytest.raises(DuplicateStoreError, match="failed"):
            await RedisDuplicateStore(client).seen("k", 10)
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
                    await RedisDuplicateStore(client, timeout=0.3).seen("k", 10)
            finally:
                server.resume()
        finally:
            await client.aclose()
