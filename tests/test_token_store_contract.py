"""The reusable store contract (``wechat_kf.testing.store_contract``) on every store we ship.

The memory stores run on asyncio and trio; the Redis store runs on asyncio (redis.asyncio) against
a real ``redis-server`` started for this module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer, running_redis
from wechat_kf._redis_store import RedisTokenStore
from wechat_kf._tokens import AccessToken, LockingTokenStore, MemoryTokenStore, TokenStore
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
    require_locking = True
    require_ledger = True

    @pytest.fixture
    def store(self) -> TokenStore:
        return MemoryTokenStore()


class TestPlainStore(TokenStoreContract):
    """A 3-method store still works: the manager falls back to its in-process lock."""

    @pytest.fixture
    def store(self) -> TokenStore:
        return PlainStore()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(Path(tmp_path_factory.mktemp("redis"))) as server:
        yield server


class TestRedisTokenStore(TokenStoreContract):
    require_locking = True
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
