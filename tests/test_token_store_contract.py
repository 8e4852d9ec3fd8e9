"""The reusable store contract (``wechat_kf.testing.store_contract``) on every store we ship.

The memory stores run on asyncio and trio, the memory store on fake time. The Redis store runs on asyncio (redis.asyncio) against
real servers started for this module: a standalone ``redis-server``, a three-master Redis Cluster
(``redis.asyncio.RedisCluster``: every multi-key script must stay in one slot) and a Sentinel in
front of the standalone server (``Sentinel.master_for``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
import redis.asyncio.sentinel

from tests.redis_server import RedisServer, running_cluster, running_sentinel
from wechat_kf._redis_tokens import RedisTokenStore
from wechat_kf._tokens import AccessToken, LockingTokenStore, MemoryTokenStore, TokenStore
from wechat_kf.testing import VirtualClock
from wechat_kf.testing.store_contract import TokenStoreContract


class PlainStore:
    """The smallest store a user can write: the three required methods and nothing else."""

    def __init__(self) -> None:
        self.tokens: dict[str, AccessToken] = {}

    async def get(self, appid: str) -> AccessToken | None:
        return self.tokens.get(appid)

    async def set(self, appid: str, token: AccessToken) -> None:
        self.tokens[appid] = token

    async def delete(self, appid: str) -> None:
        self.tokens.pop(appid, None)


def test_plain_store_is_a_token_store_but_not_a_locking_one() -> None:
    assert isinstance(PlainStore(), TokenStore)
    assert not isinstance(PlainStore(), LockingTokenStore)
    assert isinstance(MemoryTokenStore(), LockingTokenStore)


class TestMemoryTokenStore(TokenStoreContract):
    """The memory store on fake time: nothing sleeps, the outcome does not depend on load."""

    require_locking = True
    require_lock_extension = True
    require_ledger = True

    @pytest.fixture
    def clock(self) -> VirtualClock:
        return VirtualClock()

    @pytest.fixture
    def store(self, clock: VirtualClock) -> TokenStore:
        return MemoryTokenStore(clock=clock)


class TestPlainStore(TokenStoreContract):
    """A 3-method store still works: the manager falls back to its in-process lock."""

    @pytest.fixture
    def store(self) -> TokenStore:
        return PlainStore()


class TestRedisTokenStore(TokenStoreContract):
    require_locking = True
    require_lock_extension = True
    require_ledger = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # redis.asyncio

    @pytest.fixture
    async def store(self, redis_server: RedisServer) -> AsyncIterator[TokenStore]:
        async with RedisTokenStore.from_url(
            redis_server.url, prefix=f"contract-{uuid.uuid4().hex[:8]}:"
        ) as store:
            yield store


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    with running_cluster(Path(tmp_path_factory.mktemp("cluster"))) as nodes:
        yield nodes


class TestRedisClusterTokenStore(TokenStoreContract):
    require_locking = True
    require_lock_extension = True
    require_ledger = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def store(self, redis_cluster: list[RedisServer]) -> AsyncIterator[TokenStore]:
        client = redis.asyncio.RedisCluster(host="127.0.0.1", port=redis_cluster[0].port)
        # Discover the slots before concurrent use: redis-py's async cluster client can break
        # connections that are in use while its first initialization runs.
        await client.initialize()
        try:
            yield RedisTokenStore(client, prefix=f"contract-{uuid.uuid4().hex[:8]}:")
        finally:
            await client.aclose()


@pytest.fixture(scope="module")
def redis_sentinel(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[RedisServer]:
    with running_sentinel(Path(tmp_path_factory.mktemp("sentinel")), redis_server) as sentinel:
        yield sentinel


class TestRedisSentinelTokenStore(TokenStoreContract):
    require_locking = True
    require_lock_extension = True
    require_ledger = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    async def store(self, redis_sentinel: RedisServer) -> AsyncIterator[TokenStore]:
        sentinel = redis.asyncio.sentinel.Sentinel(
            [("127.0.0.1", redis_sentinel.port)], socket_timeout=2
        )
        client = sentinel.master_for("mymaster", socket_timeout=2)
        try:
            yield RedisTokenStore(client, prefix=f"contract-{uuid.uuid4().hex[:8]}:")
        finally:
            await client.aclose()
            for connection in sentinel.sentinels:
                await connection.aclose()
