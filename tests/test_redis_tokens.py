"""RedisTokenStore against a real redis-server: layout, read-only mode, outages, restarts.

The store contract itself runs in ``test_token_store_contract.py``; the many-process proof in
``test_multiprocess_tokens.py``. Everything here is asyncio only (redis.asyncio), except the
test that checks trio gets a clear error.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio

from tests.redis_server import RedisServer, running_redis
from wechat_kf import (
    AccessToken,
    AsyncWeChat,
    ForceRefreshClaim,
    ForceRefreshLimitedError,
    TokenError,
    TokenRefreshTimeoutError,
    TokenUnavailableError,
    WeChatError,
)
from wechat_kf._redis_tokens import RedisTokenStore
from wechat_kf._tokens import TokenManager, TokenStoreError
from wechat_kf.testing import FakeWeChat
from wechat_kf.testing.store_contract import CountingFetcher

pytestmark = pytest.mark.anyio

WECHAT = "https://api.weixin.qq.com"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, for tests that stop, pause or restart it."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisTokenStore]:
    async with RedisTokenStore.from_url(redis_server.url, prefix=prefix) as store:
        yield store


def read_only_client(fake: FakeWeChat, store: RedisTokenStore) -> AsyncWeChat:
    return AsyncWeChat(
        fake.appid, token_store=store, http_client=fake.http_client(), base_url=WECHAT
    )


# ---------------------------------------------------------------------- public surface


def test_public_name_and_import_without_redis() -> None:
    import wechat_kf

    assert wechat_kf.RedisTokenStore is RedisTokenStore
    # Without redis-py, `import wechat_kf` still works; building a RedisTokenStore says what
    # to install.
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "import wechat_kf\n"
        "try:\n"
        "    wechat_kf.RedisTokenStore(object())\n"
        "except ImportError as exc:\n"
        "    print('ImportError:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert "pip install 'wechat_kf[redis]'" in out.stdout


async def test_key_layout_and_ttls(store: RedisTokenStore, prefix: str) -> None:
    appid = "wxlayout"
    token = AccessToken("v" * 512, time.time() + 7200)
    await store.set(appid, token)
    fence = await store.try_lock(appid, 15)
    assert fence is not None
    raw = store.redis
    assert store.token_key(appid) == f"{prefix}{{wxlayout}}:token"
    assert store.lock_key(appid) == f"{prefix}{{wxlayout}}:lock"
    fields = await raw.hgetall(store.token_key(appid))
    assert fields == {b"access_token": b"v" * 512, b"expires_at": repr(token.expires_at).encode()}
    assert 7200 < await raw.ttl(store.token_key(appid)) <= 7260  # expiry plus a minute of grace
    assert 0 < await raw.pttl(store.lock_key(appid)) <= 15000
    assert await raw.get(store.lock_key(appid)) == fence.encode()


async def test_ledger_and_expired_token_keys(store: RedisTokenStore, prefix: str) -> None:
    appid = "wxledger"
    raw = store.redis
    claim = await store.claim_force_refresh(appid, now=time.time(), per_day=20, min_interval=30)
    assert claim is ForceRefreshClaim.GRANTED
    assert store.force_refresh_key(appid) == f"{prefix}{{wxledger}}:force_refresh"
    assert await raw.zcard(store.force_refresh_key(appid)) == 1
    assert 86400 < await raw.ttl(store.force_refresh_key(appid)) <= 86460  # a day and a minute
    # A token stored after its expiry lives out the minute of grace only.
    await store.set(appid, AccessToken("late", time.time() - 30))
    assert 0 < await raw.pttl(store.token_key(appid)) <= 30_000
    await store.set(appid, AccessToken("later", time.time() - 120))
    assert await raw.pttl(store.token_key(appid)) in (-2, 0, 1)  # 1 ms at most: gone at once


async def test_many_unanswered_lock_attempts_stay_typed_errors(own_redis: RedisServer) -> None:
    # Each failed attempt is remembered (its SET may still run); the memory is bounded.
    async with RedisTokenStore.from_url(own_redis.url, retry=None) as store:
        fences = [await store.try_lock(f"wx{n}", 5) for n in range(10)]  # more than 8 held
        assert all(fences)
        own_redis.stop()
        for _ in range(10):
            with pytest.raises(TokenStoreError, match="Redis lock for wxlost failed"):
                await store.try_lock("wxlost", 5)


@pytest.mark.parametrize(
    ("operation", "what"),
    [
        (lambda s: s.get("wxop"), "read"),
        (lambda s: s.set("wxop", AccessToken("t", time.time() + 60)), "write"),
        (lambda s: s.delete("wxop"), "delete"),
        (lambda s: s.try_lock("wxop", 5), "lock"),
        (lambda s: s.unlock("wxop", "f"), "unlock"),
        (lambda s: s.extend_lock("wxop", "f", 5), "lock renewal"),
        (
            lambda s: s.compare_and_set("wxop", AccessToken("t", 1.0), expected=None),
            "compare-and-set",
        ),
        (lambda s: s.compare_and_delete("wxop", "t"), "compare-and-delete"),
        (
            lambda s: s.claim_force_refresh("wxop", now=1.0, per_day=20, min_interval=30),
            "force-refresh claim",
        ),
    ],
)
async def test_each_failure_names_its_operation_and_appid(
    own_redis: RedisServer, operation: Any, what: str
) -> None:
    async with RedisTokenStore.from_url(own_redis.url, retry=None) as store:
        own_redis.stop()
        with pytest.raises(TokenStoreError) as info:
            await operation(store)
    assert str(info.value).startswith(f"Redis {what} for wxop failed: ConnectionError: ")
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)


def test_prefix_must_not_hold_a_hash_tag() -> None:
    client = redis.asyncio.Redis()
    with pytest.raises(ValueError, match="prefix"):
        RedisTokenStore(client, prefix="app{1}:")


async def test_decode_responses_client_works(redis_server: RedisServer, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store = RedisTokenStore(client, prefix=prefix)
        token = AccessToken("decoded", time.time() + 60)
        assert await store.compare_and_set("wxdecode", token, expected=None)
        assert await store.get("wxdecode") == token
        fence = await store.try_lock("wxdecode", 5)
        assert fence is not None
        assert await store.extend_lock("wxdecode", fence, 5)
        assert await store.unlock("wxdecode", fence)
    finally:
        await client.aclose()


async def test_repr_and_errors_never_show_secrets(store: RedisTokenStore) -> None:
    assert repr(store).startswith("RedisTokenStore(prefix=")
    secret_store = RedisTokenStore.from_url("redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in repr(secret_store)
    with pytest.raises(TokenStoreError) as info:
        await secret_store.get("wx")
    assert "hunter2" not in str(info.value)
    await secret_store.aclose()


async def test_malformed_entry_is_a_typed_error(store: RedisTokenStore) -> None:
    await store.redis.hset(store.token_key("wxbad"), mapping={"access_token": "x"})
    with pytest.raises(TokenStoreError, match="malformed"):
        await store.get("wxbad")
    for expires_at in ("soon", ""):
        await store.redis.hset(
            store.token_key("wxbad"), mapping={"access_token": "x", "expires_at": expires_at}
        )
        with pytest.raises(TokenStoreError) as info:
            await store.get("wxbad")
        assert str(info.value) == (
            f"Redis key {store.token_key('wxbad')} is malformed: a hash with fields access_token "
            "and expires_at (unix seconds) was expected"
        )
    await store.redis.delete(store.token_key("wxbad"))
    await store.redis.set(store.token_key("wxbad"), "a plain string")
    with pytest.raises(TokenStoreError, match="WRONGTYPE"):
        await store.get("wxbad")


# ---------------------------------------------------------------------- read-only mode


async def test_read_only_mode_never_fetches(store: RedisTokenStore) -> None:
    fake = FakeWeChat()
    async with read_only_client(fake, store) as wx:
        assert wx.tokens.read_only
        with pytest.raises(TokenUnavailableError, match="read-only") as info:
            await wx.kf.list()
        assert "no access token" in str(info.value)
        # The central token service writes the documented hash (any language can do this).
        value = fake.issue_token()
        await store.redis.hset(
            store.token_key(fake.appid),
            mapping={"access_token": value, "expires_at": str(int(time.time()) + 7000)},
        )
        assert await wx.access_token() == value
        assert await wx.kf.list() == []
        # WeChat rejects it and the service has not replaced it: say so, do not fetch.
        fake.invalidate_tokens()
        with pytest.raises(TokenUnavailableError, match="rejected"):
            await wx.kf.list()
        # The service stores a new one: the next call recovers.
        await store.set(fake.appid, AccessToken(fake.issue_token(), time.time() + 7000))
        assert await wx.kf.list() == []
    assert fake.token_requests == []


async def test_read_only_mode_reports_an_expired_token(store: RedisTokenStore) -> None:
    fake = FakeWeChat()
    await store.set(fake.appid, AccessToken("old", time.time() - 30))
    async with read_only_client(fake, store) as wx:
        with pytest.raises(TokenUnavailableError, match="expired"):
            await wx.access_token()
    assert fake.token_requests == []


def test_read_only_mode_needs_a_store() -> None:
    with pytest.raises(ValueError, match="token_store"):
        AsyncWeChat("wx0123456789abcdef")


# ---------------------------------------------------------------------- coordination details


async def test_waiting_for_another_process_is_bounded(store: RedisTokenStore) -> None:
    fake = FakeWeChat()
    # Another process holds the lock and never finishes (it is stuck, its TTL is long).
    await store.redis.set(store.lock_key(fake.appid), "elsewhere:1:x", px=60_000)
    async with fake.client(token_store=store, token_lock_timeout=0.5) as wx:
        with pytest.raises(TokenRefreshTimeoutError) as info:
            await wx.access_token()
    # Bounded by token_lock_timeout (the exact boundary: test_tokens.py, on fake time).
    assert str(info.value) == (
        f"waited 0.5 s for the access token refresh of {fake.appid} (another process holds the "
        "refresh lock)"
    )
    assert fake.token_requests == []


async def test_a_slow_fetch_renews_its_lock(store: RedisTokenStore) -> None:
    """Real Redis TTLs: a 1.2 s lock renewed every 0.4 s survives a stall of 0.8 s."""
    appid, ttl = "wxslow", 1.2
    lock_key = store.lock_key(appid)
    pttls: list[int] = []

    class Watched(CountingFetcher):
        async def __call__(self, force_refresh: bool) -> AccessToken:
            for _ in range(8):  # 1.6 s in all: past the first TTL
                await anyio.sleep(0.2)
                pttls.append(await store.redis.pttl(lock_key))
            return await super().__call__(force_refresh)

    fetch = Watched()
    manager = TokenManager(appid=appid, store=store, fetch=fetch, lock_ttl=ttl)
    await manager.get()
    # Held all along, and never for longer than one TTL ahead (renewed, not extended by more).
    assert all(0 < pttl <= ttl * 1000 for pttl in pttls), pttls
    assert await store.redis.exists(lock_key) == 0  # released after the fetch
    assert fetch.calls == 1


async def test_extend_lock_is_fenced(store: RedisTokenStore) -> None:
    fence = await store.try_lock("wxext", 0.5)
    assert fence is not None
    assert not await store.extend_lock("wxext", "someone-else", 60)
    assert 0 < await store.redis.pttl(store.lock_key("wxext")) <= 500
    assert await store.extend_lock("wxext", fence, 60)
    assert 59_000 < await store.redis.pttl(store.lock_key("wxext")) <= 60_000


async def test_force_refresh_budget_is_shared(store: RedisTokenStore) -> None:
    appid = "wxforced"

    class SameToken(CountingFetcher):
        async def __call__(self, force_refresh: bool) -> AccessToken:
            await super().__call__(force_refresh)
            return AccessToken(f"forced{self.forced}", time.time() + 7200)

    fetch = SameToken()
    one = TokenManager(appid=appid, store=store, fetch=fetch)
    two = TokenManager(appid=appid, store=store, fetch=fetch)
    first = await one.get()  # "forced0"
    assert await one.recover(first) == "forced1"  # the refetch returned it again: forced
    assert fetch.forced == 1
    # Another process sees "forced1" rejected and the refetch return it: the 30 s interval
    # counts the first process's force_refresh too.
    with pytest.raises(ForceRefreshLimitedError, match="30 s"):
        await two.recover("forced1")
    assert fetch.forced == 1


async def test_logs_never_show_the_token(
    store: RedisTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeWeChat()
    caplog.set_level(logging.DEBUG)
    async with fake.client(token_store=store) as wx:
        token = await wx.access_token()
        fake.invalidate_tokens()
        await wx.kf.list()
        new = await wx.access_token()
    assert token != new
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in text
    assert new not in text


# ---------------------------------------------------------------------- outages


async def test_redis_down_is_a_typed_error_not_a_hang(own_redis: RedisServer) -> None:
    fake = FakeWeChat()
    async with (
        RedisTokenStore.from_url(own_redis.url, prefix="down:") as store,
        fake.client(token_store=store) as wx,
    ):
        token = await wx.access_token()
        own_redis.stop()
        # A fresh token is served from memory: an outage does not stop the API calls.
        assert await wx.access_token() == token
        assert await wx.kf.list() == []
        # A refresh needs the store: a typed error, at once (a refused connection, not the
        # store's timeout running out).
        fake.invalidate_tokens()
        with pytest.raises(TokenStoreError) as info:
            await wx.kf.list()
        assert "took longer than" not in str(info.value)
        assert isinstance(info.value, TokenError)
        assert isinstance(info.value, WeChatError)
        assert "ConnectionError" in str(info.value)
        assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
        # Redis comes back (empty: no persistence): the next call recovers with one fetch.
        own_redis.start()
        assert await wx.kf.list() == []
        stored = await store.get(fake.appid)
        assert stored is not None
        assert stored.value == await wx.access_token() != token
    assert len(fake.token_requests) == 2


class CountingRedisTokenStore(RedisTokenStore):
    """Counts the lock attempts: each one is a Redis round trip."""

    lock_attempts = 0

    async def try_lock(self, appid: str, ttl: float) -> str | None:
        self.lock_attempts += 1
        return await super().try_lock(appid, ttl)


async def test_redis_down_during_early_refresh_serves_the_valid_token(
    own_redis: RedisServer,
) -> None:
    now = [time.time()]
    fetch = CountingFetcher()
    async with CountingRedisTokenStore.from_url(own_redis.url, prefix="blip:") as store:
        manager = TokenManager(appid="wxblip", store=store, fetch=fetch, clock=lambda: now[0])
        token = await manager.get()
        own_redis.stop()
        now[0] += 7200 - 200  # inside the refresh margin, well before expiry
        attempts = store.lock_attempts
        assert await manager.get() == token  # the refresh failed: the valid token is served
        assert store.lock_attempts == attempts + 1
        for _ in range(20):  # backing off: no more Redis round trips
            assert await manager.get() == token
        assert store.lock_attempts == attempts + 1
        own_redis.start()
        now[0] += 10  # past the backoff: the refresh succeeds (Redis came back empty)
        fresh = await manager.get()
        assert fresh != token
        stored = await store.get("wxblip")
        assert stored is not None
        assert stored.value == fresh
    assert fetch.calls == 2


async def test_hung_redis_times_out(own_redis: RedisServer) -> None:
    async with RedisTokenStore.from_url(own_redis.url, timeout=1.0) as store:
        await store.set("wxhung", AccessToken("x", time.time() + 60))
        own_redis.pause()
        try:
            with pytest.raises(TokenStoreError, match=r"Redis .* took longer than 1 s"):
                await store.get("wxhung")
        finally:
            own_redis.resume()
        # The connection that timed out was dropped; the store works again.
        with anyio.fail_after(5):
            while True:
                try:
                    assert await store.get("wxhung") is not None
                    break
                except TokenStoreError:
                    await anyio.sleep(0.1)


async def test_a_lock_attempt_lost_in_a_stall_is_taken_over_not_waited_out(
    own_redis: RedisServer,
) -> None:
    """Issue 10.4: Redis stalls (SIGSTOP) while a refresh takes the lock; the SET runs later."""
    fake = FakeWeChat()
    async with (
        RedisTokenStore.from_url(own_redis.url, prefix="stall:", timeout=0.5) as store,
        fake.client(token_store=store, token_lock_timeout=2, token_lock_ttl=15) as wx,
    ):
        assert await wx.kf.list() == []  # a token, and the lock script loaded in Redis
        lock = store.lock_key(fake.appid)
        own_redis.pause()
        try:
            fake.invalidate_tokens()  # the next call is rejected and must refresh
            with pytest.raises(TokenStoreError, match="lock"):
                await wx.kf.list()
        finally:
            own_redis.resume()
        # Redis runs the attempt it had buffered: the lock now holds a fence with the full
        # TTL that nobody will release.
        with own_redis.client() as inspect, anyio.fail_after(10):
            while not inspect.exists(lock):  # noqa: ASYNC110 (another process: no event)
                await anyio.sleep(0.02)
            orphan = inspect.get(lock)
            assert orphan is not None
            assert inspect.pttl(lock) > 10_000
            # The next call takes that lock over at once. Before the fix it waited for the
            # lock (token_lock_timeout, 2 s) and failed with TokenRefreshTimeoutError.
            assert await wx.kf.list() == []
            assert not inspect.exists(lock)  # released after the refresh
    assert len(fake.token_requests) == 2


async def test_an_unanswered_unlock_is_taken_over_by_the_next_lock(
    own_redis: RedisServer,
) -> None:
    async with RedisTokenStore.from_url(own_redis.url, prefix="unlock:", timeout=0.5) as store:
        fence = await store.try_lock("wxunlock", 15)
        assert fence is not None
        own_redis.pause()
        try:
            with pytest.raises(TokenStoreError, match="unlock"):
                await store.unlock("wxunlock", fence)
        finally:
            own_redis.resume()
        with anyio.fail_after(10):  # Redis runs the buffered unlock, or the lock stays
            while True:
                try:
                    again = await store.try_lock("wxunlock", 15)
                    break
                except TokenStoreError:
                    await anyio.sleep(0.05)
        assert again is not None
        assert again != fence
        # Someone else's lock is never taken over.
        other = RedisTokenStore(store.redis, prefix="unlock:")
        assert await other.try_lock("wxunlock", 15) is None


async def test_unanswered_fences_are_remembered_for_their_ttl_and_the_store_timeout(
    own_redis: RedisServer,
) -> None:
    """An unlock lost in a stall leaves a fence that may hold the lock for the TTL it last set
    (try_lock's, or extend_lock's), plus the store's timeout (how long Redis may still run the
    buffered command): the store offers it for takeover exactly that long, on its own clock."""
    now = [100.0]
    async with RedisTokenStore.from_url(own_redis.url, prefix="orphan:", timeout=0.5) as store:
        store._monotonic = lambda: now[0]
        plain = await store.try_lock("wxa", 3)
        renewed = await store.try_lock("wxb", 3)
        assert plain is not None
        assert renewed is not None
        assert await store.extend_lock("wxb", renewed, 6) is True
        own_redis.pause()
        try:
            for appid, fence in (("wxa", plain), ("wxb", renewed)):
                with pytest.raises(TokenStoreError, match="unlock"):
                    await store.unlock(appid, fence)
        finally:
            own_redis.resume()
        assert store._live_orphans("wxa") == [plain]
        now[0] = 103.499  # 100 + 3 + 0.5, just before
        assert store._live_orphans("wxa") == [plain]
        assert store._live_orphans("wxb") == [renewed]
        now[0] = 103.5  # its end: it cannot hold the lock any more
        assert store._live_orphans("wxa") == []
        now[0] = 106.499  # 100 + 6 (the renewal's TTL) + 0.5
        assert store._live_orphans("wxb") == [renewed]
        now[0] = 106.5
        assert store._live_orphans("wxb") == []
        # A lock taken forgets the appid's orphans: none of them can hold it now.
        store._remember_orphan("wxc", "lost-fence", 15)
        assert await store.try_lock("wxc", 3) is not None
        assert store._live_orphans("wxc") == []


async def test_the_newest_eight_unanswered_fences_are_kept(store: RedisTokenStore) -> None:
    for n in range(9):
        store._remember_orphan("wx", f"fence-{n}", 60)
        store._held(f"fence-{n}", n)
    assert store._live_orphans("wx") == [f"fence-{n}" for n in range(1, 9)]
    assert store._ttls == {f"fence-{n}": n for n in range(1, 9)}


async def test_user_client_without_timeouts_is_still_bounded(own_redis: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(own_redis.url, socket_timeout=None)
    store = RedisTokenStore(client, timeout=0.5)
    try:
        await store.delete("wx")
        own_redis.pause()
        with pytest.raises(TokenStoreError, match=r"longer than 0\.5 s"):
            await store.try_lock("wx", 5)
    finally:
        own_redis.resume()
        await client.aclose()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gets_a_clear_error(redis_server: RedisServer) -> None:
    store = RedisTokenStore(redis.asyncio.Redis.from_url(redis_server.url))
    with pytest.raises(TokenStoreError, match="asyncio only"):
        await store.get("wx")
