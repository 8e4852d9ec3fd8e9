"""The media-id store contract (``wechat_kf.testing.media_store_contract``) on every store we ship.

The memory store runs on asyncio and trio, on a virtual clock; the Redis store on asyncio (redis.asyncio) against a
real ``redis-server`` and a three-master Redis Cluster started for this module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
import redis.asyncio

from tests.redis_server import RedisServer, running_cluster
from wechat_kf._media_ids import MediaIdStore, MemoryMediaIdStore
from wechat_kf._redis_media import RedisMediaIdStore
from wechat_kf.testing import VirtualClock
from wechat_kf.testing.media_store_contract import MediaStoreContract


class TestMemoryMediaIdStore(MediaStoreContract):
    """On a virtual clock: nothing sleeps."""

    @pytest.fixture
    def clock(self) -> VirtualClock:
        return VirtualClock()

    @pytest.fixture
    def store(self, clock: VirtualClock) -> MediaIdStore:
        return MemoryMediaIdStore(clock=clock)


class TestRedisMediaIdStore(MediaStoreContract):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # redis.asyncio

    @pytest.fixture
    async def store(self, redis_server: RedisServer) -> AsyncIterator[MediaIdStore]:
        async with RedisMediaIdStore.from_url(
            redis_server.url, prefix=f"contract-{uuid.uuid4().hex[:8]}:"
        ) as store:
            yield store


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with running_cluster(Path(tmp_path_factory.mktemp("cluster"))) as nodes:
        yield nodes


class TestRedisClusterMediaIdStore(MediaStoreContract):
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def store(self, redis_cluster: list[RedisServer]) -> AsyncIterator[MediaIdStore]:
        client = redis.asyncio.RedisCluster(host="127.0.0.1", port=redis_cluster[0].port)
        await client.initialize()  # discover the slots before concurrent use
        try:
            yield RedisMediaIdStore(client, prefix=f"contract-{uuid.uuid4().hex[:8]}:")
        finally:
            await client.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_from_url_store_waits_for_a_free_connection(
    redis_server: RedisServer, anyio_backend: str
) -> None:
    # redis-py's own pool refuses a command at once when its connections are all busy
    # (MaxConnectionsError); the SDK's clients wait for one, within the store's timeout.
    store = RedisMediaIdStore.from_url(redis_server.url, max_connections=4)
    async with store, anyio.create_task_group() as tg:
        for n in range(300):
            tg.start_soon(store.get, "wxcrowd", f"image:{n}")
