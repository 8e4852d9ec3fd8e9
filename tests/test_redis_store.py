"""The conventions every Redis store shares (``RedisStore``): client defaults, keys, bounded typed
operations, closing. The stores themselves run against real servers in test_redis_tokens.py and
the contract suites.
"""

from __future__ import annotations

import uuid

import anyio
import pytest
import redis.asyncio
import redis.exceptions

from tests.redis_server import RedisServer
from wechat_kf import StoreError, TokenStoreError, _defaults, _redis
from wechat_kf._redis import RedisStore, Script, redis_client, text
from wechat_kf._redis_tokens import RedisTokenStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio


def test_replies_read_as_text() -> None:
    assert text(None) is None
    assert text(b"caf\xc3\xa9") == "café"
    assert text("already") == "already"
    assert text(7) == "7"


async def test_the_sdk_client_has_short_timeouts_few_retries_and_a_blocking_pool() -> None:
    client = redis_client("redis://127.0.0.1:1/0")
    try:
        pool = client.connection_pool
        assert isinstance(pool, redis.asyncio.BlockingConnectionPool)
        assert pool.max_connections == _defaults.REDIS_MAX_CONNECTIONS == 100
        assert pool.connection_kwargs["socket_timeout"] == _defaults.REDIS_SOCKET_TIMEOUT == 2.0
        assert pool.connection_kwargs["socket_connect_timeout"] == 2.0
        retry = pool.connection_kwargs["retry"]
        assert retry.get_retries() == _defaults.REDIS_RETRIES == 2
        # Jittered back-off between them: half to all of min(0.5 s, 0.05 s * 2**failures).
        backoff = retry._backoff  # redis-py keeps it private; compute() is its public method
        assert {_defaults.REDIS_RETRY_BASE, _defaults.REDIS_RETRY_CAP} == {0.05, 0.5}
        for failures, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (20, 0.5)):
            waits = [backoff.compute(failures) for _ in range(200)]
            assert ceiling / 2 <= min(waits)
            assert max(waits) <= ceiling
            assert max(waits) > ceiling * 0.9  # the jitter spans the upper half
        assert client.auto_close_connection_pool is True
    finally:
        await client.aclose()
    mine = redis_client("redis://127.0.0.1:1/0", socket_timeout=9, max_connections=3)
    try:
        assert mine.connection_pool.connection_kwargs["socket_timeout"] == 9
        assert mine.connection_pool.connection_kwargs["socket_connect_timeout"] == 2.0
        assert mine.connection_pool.max_connections == 3
    finally:
        await mine.aclose()


async def test_closing_a_store_made_from_a_url_closes_its_connections(
    redis_server: RedisServer,
) -> None:
    name = f"probe-{uuid.uuid4().hex[:8]}"
    watcher = redis.asyncio.Redis.from_url(redis_server.url)

    async def connected() -> int:
        clients = await watcher.client_list()
        return sum(client["name"] == name for client in clients)

    try:
        async with RedisTokenStore.from_url(redis_server.url, client_name=name) as store:
            await store.get("wx")
            assert await connected() == 1
        assert await connected() == 0
        # A client you pass in stays yours: the store leaves it open.
        yours = redis.asyncio.Redis.from_url(redis_server.url, client_name=name)
        async with RedisTokenStore(yours) as store:
            await store.get("wx")
        assert await connected() == 1
        await yours.aclose()
    finally:
        await watcher.aclose()


async def test_a_store_class_declares_scripts_each_registered_once_per_store(
    redis_server: RedisServer,
) -> None:
    class Scripted(RedisStore):  # declared here: Script's set-up runs inside the test
        echo = Script("return ARGV[1]")
        doubled = Script("return ARGV[1] .. ARGV[1]")

    assert Scripted.echo.source == "return ARGV[1]"  # read on the class: the declaration
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        first, second = Scripted(client), Scripted(client)
        assert first.echo is first.echo  # registered at the first read, then kept
        assert first.echo is not second.echo  # per store
        assert first.echo is not first.doubled  # per script
        assert await first.echo(args=["wx"]) == b"wx"
        assert await first.doubled(args=["wx"]) == b"wxwx"
        assert await second.echo(args=["é"]) == "é".encode()
    finally:
        await client.aclose()


def test_redis_py_is_imported_once_for_its_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_redis, "_redis_errors", None)
    errors = _redis.require_redis()
    assert errors == (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)
    assert _redis.require_redis() is errors


def test_configuration_is_checked() -> None:
    for prefix in ("a{b", "a}b", 5):
        with pytest.raises(ValueError) as info:
            RedisStore(object(), prefix=prefix)  # type: ignore[arg-type]
        assert str(info.value) == f"prefix must be a string without '{{' or '}}', got {prefix!r}"
    for timeout in (0, -1, True, "5"):
        with pytest.raises(ValueError) as info:
            RedisStore(object(), timeout=timeout)  # type: ignore[arg-type]
        assert str(info.value) == f"timeout must be a positive number of seconds, got {timeout!r}"
    store = RedisStore(object(), timeout=1)  # type: ignore[arg-type]
    assert store.timeout == 1.0
    assert type(store.timeout) is float
    assert RedisStore(object(), timeout=0.001).timeout == 0.001  # type: ignore[arg-type]
    assert RedisStore(object()).timeout == _defaults.TOKEN_STORE_TIMEOUT  # type: ignore[arg-type]
    assert RedisStore(object()).prefix == "wechat_kf:"  # type: ignore[arg-type]
    assert repr(RedisStore(object(), prefix="p:")) == "RedisStore(prefix='p:', client=object)"  # type: ignore[arg-type]


def test_keys_put_the_scope_in_the_hash_tag() -> None:
    store = RedisStore(object(), prefix="shop:")  # type: ignore[arg-type]
    assert store.key("wx123", "token") == "shop:{wx123}:token"
    for scope in ("a{b", "a}b"):
        with pytest.raises(ValueError) as info:
            store.key(scope, "token")
        assert str(info.value) == f"{scope!r} must not contain '{{' or '}}'"


class TokenRedisStore(RedisStore):
    error = TokenStoreError


async def test_every_failure_of_an_operation_is_the_store_error() -> None:
    store = TokenRedisStore(object(), timeout=0.05)  # type: ignore[arg-type]

    async def answer() -> str:
        return "ok"

    assert await store.run("get", "wx1", answer) == "ok"

    async def hang() -> None:
        await anyio.sleep(3600)

    with pytest.raises(TokenStoreError) as info:
        await store.run("lock", "wx1", hang)
    assert str(info.value) == "Redis lock for wx1 took longer than 0.05 s"
    assert info.value.__cause__ is None

    for raised, detail in [
        (
            redis.exceptions.ConnectionError("Error 111 connecting"),
            "ConnectionError: Error 111 connecting",
        ),
        (redis.exceptions.ResponseError(""), "ResponseError: no detail"),
        (redis.exceptions.RedisClusterException("slots"), "RedisClusterException: slots"),
    ]:

        async def fail(error: Exception = raised) -> None:
            raise error

        with pytest.raises(TokenStoreError) as info:
            await store.run("set", "wx2", fail)
        assert str(info.value) == f"Redis set for wx2 failed: {detail}"
        assert info.value.__cause__ is raised

    async def bug() -> None:
        raise AttributeError("'NoneType' object has no attribute 'send'")

    with pytest.raises(TokenStoreError) as info:
        await store.run("get", "wx3", bug)
    assert str(info.value) == "Redis get for wx3 failed unexpectedly: AttributeError"
    assert isinstance(info.value.__cause__, AttributeError)
    assert issubclass(TokenStoreError, StoreError)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_other_event_loops_get_a_clear_error() -> None:
    store = TokenRedisStore(object())  # type: ignore[arg-type]

    async def never() -> None:
        raise AssertionError("not run")

    with pytest.raises(TokenStoreError) as info:
        await store.run("get", "wx", never)
    assert str(info.value) == "TokenRedisStore runs on asyncio only (redis.asyncio), not on trio"


def test_outside_an_event_loop_the_error_says_so() -> None:
    store = TokenRedisStore(object())  # type: ignore[arg-type]

    async def never() -> None:
        raise AssertionError("not run")

    coroutine = store.run("get", "wx", never)
    with pytest.raises(TokenStoreError) as info:
        coroutine.send(None)
    assert str(info.value) == (
        "TokenRedisStore runs on asyncio only (redis.asyncio), not on no event loop"
    )
