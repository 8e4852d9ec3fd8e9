"""The window store contract (``wechat_kf.testing.window_store_contract``) on every store we ship.

The memory store runs on asyncio and trio. The Redis store runs on asyncio (redis.asyncio)
against real servers started for this module: a standalone ``redis-server`` (with a page size of
100, so that the streaming tests cross many pages) and a three-master Redis Cluster (every script
and pipeline must stay in the appid's slot).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio

from tests.redis_server import RedisServer, running_cluster
from wechat_kf import MemoryWindowStore, RedisWindowStore, WindowStore
from wechat_kf.testing.window_store_contract import WindowStoreContract


def test_the_shipped_stores_are_window_stores() -> None:
    assert isinstance(MemoryWindowStore(), WindowStore)


class TestMemoryWindowStore(WindowStoreContract):
    @pytest.fixture
    def store(self) -> WindowStore:
        return MemoryWindowStore()


class TestRedisWindowStore(WindowStoreContract):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # redis.asyncio

    @pytest.fixture
    async def store(self, redis_server: RedisServer) -> AsyncIterator[WindowStore]:
        async with RedisWindowStore.from_url(
            redis_server.url, prefix=f"contract-{uuid.uuid4().hex[:8]}:", page_size=100
        ) as store:
            yield store


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with running_cluster(Path(tmp_path_factory.mktemp("cluster"))) as nodes:
        yield nodes


class TestRedisClusterWindowStore(WindowStoreContract):
    stream_users = 300

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def store(self, redis_cluster: list[RedisServer]) -> AsyncIterator[WindowStore]:
        client = redis.asyncio.RedisCluster(host="127.0.0.1", port=redis_cluster[0].port)
        await client.initialize()  # discover the slots before concurrent use
        try:
            yield RedisWindowStore(client, prefix=f"contract-{uuid.uuid4().hex[:8]}:", page_size=64)
        finally:
            await client.aclose()
