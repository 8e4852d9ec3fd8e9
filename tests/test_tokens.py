"""Token lifecycle against the fake WeChat: single flight, refresh ahead, recovery, limits."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

from wechat_kf import (
    AccessToken,
    AccessTokenError,
    AsyncWeChat,
    ConfigurationError,
    ForceRefreshLimitedError,
    MemoryTokenStore,
    MinuteQuotaError,
    ResponseTimeoutError,
    TokenFetchError,
    TokenRefreshTimeoutError,
    TokenStoreError,
    _defaults,
)
from wechat_kf._tokens import TokenManager
from wechat_kf.testing import FakeWeChat, VirtualClock
from wechat_kf.testing.store_contract import CountingFetcher

from .conftest import SleepRecorder

pytestmark = pytest.mark.anyio

KF_LIST = "/cgi-bin/customservice/getkflist"
STABLE = "/cgi-bin/stable_token"
CLASSIC = "/cgi-bin/token"


async def test_200_concurrent_cold_calls_fetch_one_token(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    tokens: list[str] = []

    async def call() -> None:
        tokens.append(await wx.access_token())

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(call)

    assert len(fake.token_requests) == 1
    assert len(set(tokens)) == 1
    assert wx.tokens.fetch_count == 1


async def test_stable_token_request_on_the_wire(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.access_token()
    (request,) = fake.token_requests
    assert request.method == "POST"
    assert request.path == STABLE
    assert request.raw_query == ""
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "grant_type": "client_credential",
        "appid": fake.appid,
        "secret": fake.secret,
    }
    assert b" " not in request.body  # compact


async def test_classic_token_request_on_the_wire(fake: FakeWeChat) -> None:
    async with fake.client(token_endpoint="classic") as wx:
        await wx.access_token()
    (request,) = fake.token_requests
    assert request.method == "GET"
    assert request.path == CLASSIC
    assert request.query == {
        "grant_type": "client_credential",
        "appid": fake.appid,
        "secret": fake.secret,
    }
    assert request.body == b""


async def test_token_is_injected_in_the_query(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.kf.list()
    token = await wx.access_token()
    (api_call,) = fake.requests_to(KF_LIST)
    assert api_call.raw_query == f"access_token={token}"


async def test_fresh_token_is_reused_without_store_reads(fake: FakeWeChat) -> None:
    class CountingStore(MemoryTokenStore):
        reads = 0

        async def get(self, appid: str) -> AccessToken | None:
            self.reads += 1
            return await super().get(appid)

    store = CountingStore()
    async with fake.client(token_store=store) as wx:
        for _ in range(20):
            await wx.kf.list()
    assert store.reads == 1  # the cold double-check only
    assert len(fake.token_requests) == 1


async def test_token_near_expiry_is_refreshed_ahead(fake: FakeWeChat) -> None:
    store = MemoryTokenStore()
    old = fake.issue_token()
    await store.set(fake.appid, AccessToken(old, time.time() + 100))  # inside the 300 s margin
    async with fake.client(token_store=store) as wx:
        token = await wx.access_token()
    assert len(fake.token_requests) == 1
    stored = await store.get(fake.appid)
    assert stored is not None
    assert stored.value == token
    assert stored.remaining() > 7000


async def test_refresh_margin_is_configurable(fake: FakeWeChat) -> None:
    store = MemoryTokenStore()
    await store.set(fake.appid, AccessToken(fake.issue_token(), time.time() + 100))
    async with fake.client(token_store=store, refresh_margin=60) as wx:
        await wx.access_token()
    assert fake.token_requests == []


async def test_store_shared_between_clients_fetches_once(fake: FakeWeChat) -> None:
    store = MemoryTokenStore()
    async with fake.client(token_store=store) as one, fake.client(token_store=store) as two:
        assert await one.access_token() == await two.access_token()
    assert len(fake.token_requests) == 1


async def test_rejected_token_is_refreshed_and_request_resent_once(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    first = await wx.access_token()
    fake.invalidate_tokens()  # the server forgets it: next call answers 40001
    accounts = await wx.kf.list()
    assert accounts == []
    calls = fake.requests_to(KF_LIST)
    assert next(c.access_token for c in calls) == first
    assert len(calls) == 2
    assert calls[1].access_token != first
    assert len(fake.token_requests) == 2


async def test_expired_token_42001_recovers(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.kf.list()
    fake.clock.advance(7201)  # server side: the token expired (the SDK's clock did not move)
    await wx.kf.list()
    assert len(fake.requests_to(KF_LIST)) == 3
    assert len(fake.token_requests) == 2


async def test_50_concurrent_rejections_cause_one_refresh(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    await wx.access_token()
    fake.invalidate_tokens()

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(wx.kf.list)

    assert len(fake.token_requests) == 2  # the cold fetch and exactly one refresh
    assert len(fake.requests_to(KF_LIST)) == 100  # each call: rejected once, resent once


async def test_token_recovery_is_bounded(fake: FakeWeChat, wx: AsyncWeChat) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, errcode=40001, times=5)
    with pytest.raises(AccessTokenError) as info:
        await wx.kf.list()
    assert info.value.errcode == 40001
    assert len(fake.requests_to(KF_LIST)) == 2  # sent, resent once with a fresh token, stop


async def test_stable_refetch_returning_the_rejected_token_forces_refresh(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    token = await wx.access_token()
    fake.inject(
        KF_LIST, errcode=40001
    )  # WeChat rejects a token the stable endpoint still hands out
    await wx.kf.list()
    bodies = [r.json() for r in fake.token_requests]
    assert [b.get("force_refresh") for b in bodies] == [None, None, True]
    calls = fake.requests_to(KF_LIST)
    assert calls[0].access_token == token
    assert calls[1].access_token != token
    assert await wx.access_token() == calls[1].access_token


async def test_force_refresh_respects_the_30_second_interval(
    fake: FakeWeChat, wx: AsyncWeChat
) -> None:
    await wx.access_token()
    fake.inject(KF_LIST, errcode=40001)
    await wx.kf.list()  # first forced refresh: allowed
    fake.inject(KF_LIST, errcode=40001)
    with pytest.raises(ForceRefreshLimitedError, match="30 s"):
        await wx.kf.list()
    forced = [r for r in fake.token_requests if r.json().get("force_refresh")]
    assert len(forced) == 1


@pytest.mark.parametrize(
    ("errcode", "fix"),
    [
        (40013, "appid"),
        (40125, "appsecret"),
        (40164, "whitelist"),
        (61004, "whitelist"),
        (89503, "administrator"),
        (40243, "frozen"),
    ],
)
async def test_configuration_errors_are_never_retried(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder, errcode: int, fix: str
) -> None:
    fake.inject(STABLE, errcode=errcode, times=5)
    with pytest.raises(ConfigurationError) as info:
        await wx.access_token()
    assert info.value.errcode == errcode
    assert fix in str(info.value)
    assert len(fake.token_requests) == 1
    assert sleeps.delays == []


async def test_wrong_secret_is_a_configuration_error(fake: FakeWeChat) -> None:
    async with AsyncWeChat(
        fake.appid, "wrong", http_client=fake.http_client(), token_endpoint="classic"
    ) as wx:
        with pytest.raises(ConfigurationError) as info:
            await wx.kf.list()
    # The classic endpoint says 40001 for a wrong secret: not a stale token, no refresh loop.
    assert info.value.errcode == 40001
    assert "appsecret" in str(info.value)
    assert len(fake.token_requests) == 1


async def test_busy_token_endpoint_is_retried(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    fake.inject(STABLE, errcode=-1, times=2)
    await wx.access_token()
    assert len(fake.token_requests) == 3
    assert len(sleeps.delays) == 2


async def test_token_fetch_timeout(fake: FakeWeChat) -> None:
    fake.inject(STABLE, delay=1.0)
    async with fake.client(token_fetch_timeout=0.05, max_retries=0) as wx:
        with pytest.raises(TokenFetchError) as info:
            await wx.access_token()
    assert isinstance(info.value.__cause__, ResponseTimeoutError)


async def test_waiting_for_the_refresh_lock_times_out(fake: FakeWeChat) -> None:
    fake.inject(STABLE, delay=60)  # the holder's token request hangs
    async with fake.client(token_lock_timeout=0.1) as wx, anyio.create_task_group() as tg:
        tg.start_soon(wx.access_token)
        while not fake.token_requests:  # noqa: ASYNC110 - the fake records, it does not signal
            await anyio.sleep(0.01)
        with pytest.raises(TokenRefreshTimeoutError) as info:
            await wx.access_token()  # waits for the holder's in-process lock
        tg.cancel_scope.cancel()
    assert str(info.value) == f"waited 0.1 s for the access token refresh of {fake.appid}"
    assert len(fake.token_requests) == 1


async def test_classic_tokens_invalidate_each_other_after_the_overlap(fake: FakeWeChat) -> None:
    async with (
        fake.client(token_endpoint="classic") as one,
        fake.client(token_endpoint="classic") as two,
    ):
        await one.kf.list()
        await two.kf.list()  # a second fetch: the first token now lives 5 more minutes
        fake.clock.advance(301)
        await one.kf.list()  # 40001 at the server, recovered with one more fetch
    assert len(fake.token_requests) == 3


# ---------------------------------------------------------------------- refresh ahead of expiry
# A refresh ahead of expiry that fails must not fail calls the current token can still serve.


class Clock:
    """A wall clock the test moves by hand (the manager's ``clock``)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class FlakyStore(MemoryTokenStore):
    """A shared store whose lock fails while ``down`` (think: a Redis blip)."""

    down = False
    lock_attempts = 0

    async def try_lock(self, appid: str, ttl: float) -> str | None:
        self.lock_attempts += 1
        if self.down:
            raise TokenStoreError("Redis lock for wx failed: ConnectionError: blip")
        return await super().try_lock(appid, ttl)


async def test_store_blip_during_early_refresh_serves_the_valid_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, store, fetch = Clock(), FlakyStore(), CountingFetcher()
    manager = TokenManager(appid="wxblip", store=store, fetch=fetch, clock=clock)
    token = await manager.get()
    clock.now += 7200 - 200  # 200 s left: inside the 300 s refresh margin
    store.down = True
    with caplog.at_level(logging.WARNING, logger="wechat_kf.tokens"):
        assert await manager.get() == token
    assert "using the current token" in caplog.text
    assert store.lock_attempts == 2
    # Backing off: the next calls do not hit the failing store at all.
    for _ in range(10):
        assert await manager.get() == token
    assert store.lock_attempts == 2
    clock.now += _defaults.TOKEN_REFRESH_BACKOFF + 0.1
    assert await manager.get() == token  # tried again, failed again, still served
    assert store.lock_attempts == 3
    # The store is back: the next attempt after the backoff refreshes.
    store.down = False
    clock.now += _defaults.TOKEN_REFRESH_BACKOFF + 0.1
    fresh = await manager.get()
    assert fresh != token
    assert fetch.calls == 2


async def test_store_blip_near_expiry_still_raises() -> None:
    clock, store, fetch = Clock(), FlakyStore(), CountingFetcher()
    manager = TokenManager(appid="wxblip", store=store, fetch=fetch, clock=clock)
    token = await manager.get()
    store.down = True
    clock.now += 7200 - 20  # inside the safety margin: do not hand it out
    with pytest.raises(TokenStoreError):
        await manager.get()
    # recover(): the token is known bad, never handed back.
    clock.now -= 200
    with pytest.raises(TokenStoreError):
        await manager.recover(token)


@pytest.mark.parametrize(
    "fault",
    [{"errcode": -1, "times": 10}, {"delay": 1.0, "times": 10}],
    ids=["busy", "timeout"],
)
async def test_failing_token_endpoint_during_early_refresh_serves_the_stored_token(
    fake: FakeWeChat, sleeps: SleepRecorder, fault: dict[str, float]
) -> None:
    store = MemoryTokenStore()
    old = fake.issue_token()
    await store.set(fake.appid, AccessToken(old, time.time() + 200))  # inside the margin
    fake.inject(STABLE, **fault)  # type: ignore[arg-type]
    async with fake.client(token_store=store, sleep=sleeps, token_fetch_timeout=0.05) as wx:
        assert await wx.access_token() == old
        assert await wx.kf.list() == []  # the API call goes on with the still-valid token
        assert await wx.access_token() == old
    assert len(fake.token_requests) == 3  # one refresh (3 attempts), then backing off
    assert [c.access_token for c in fake.requests_to(KF_LIST)] == [old]


async def test_configuration_error_during_early_refresh_still_raises(
    fake: FakeWeChat, sleeps: SleepRecorder
) -> None:
    store = MemoryTokenStore()
    await store.set(fake.appid, AccessToken(fake.issue_token(), time.time() + 200))
    fake.inject(STABLE, errcode=40125, times=5)
    async with fake.client(token_store=store, sleep=sleeps) as wx:
        with pytest.raises(ConfigurationError):
            await wx.access_token()


async def test_callers_do_not_wait_for_an_early_refresh() -> None:
    time = VirtualClock()
    store, fetch = MemoryTokenStore(clock=time), CountingFetcher(clock=time)
    manager = TokenManager(appid="wxahead", store=store, fetch=fetch, clock=time, sleep=time.sleep)
    token = await manager.get()
    time.advance(7200 - 200)  # inside the refresh margin
    fetch.delay = 5.0  # the refresh lasts until the test moves time on
    refreshed: list[str] = []
    served: list[str] = []

    async def refresher() -> None:
        refreshed.append(await manager.get())

    async def caller() -> None:
        served.append(await manager.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(refresher)
        await time.elapse(0)  # the refresh is under way: its fetch waits on the fake clock
        assert fetch.calls == 2
        for _ in range(50):
            tg.start_soon(caller)
        await time.elapse(0)  # every caller ran until it returned or waited
        assert served == [token] * 50, "callers waited for the refresh though their token was valid"
        assert refreshed == []
        await time.elapse(fetch.delay)
    assert refreshed != [token]
    assert fetch.calls == 2
    assert await manager.get() == refreshed[0]


async def test_early_refresh_does_not_wait_for_another_process() -> None:
    time = VirtualClock()
    store, fetch = MemoryTokenStore(clock=time), CountingFetcher(clock=time)
    manager = TokenManager(appid="wxother", store=store, fetch=fetch, clock=time, sleep=time.sleep)
    token = await manager.get()
    time.advance(7200 - 200)
    assert await store.try_lock("wxother", 60) is not None  # another process is refreshing
    served: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _append(served, manager.get()))
        await time.elapse(0)  # no time passes: a caller that polled would still be waiting
        assert served == [token]
    assert fetch.calls == 1


async def _append(to: list[str], value: Awaitable[str]) -> None:
    to.append(await value)


async def test_waiting_for_another_process_ends_at_the_lock_timeout() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    assert await store.try_lock("wxwait", 3600) is not None  # another process, stuck
    fetch = CountingFetcher(clock=time)
    manager = TokenManager(
        appid="wxwait", store=store, fetch=fetch, clock=time, sleep=time.sleep, lock_timeout=30
    )
    errors: list[TokenRefreshTimeoutError] = []

    async def call() -> None:
        with pytest.raises(TokenRefreshTimeoutError) as info:
            await manager.get()
        errors.append(info.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await time.elapse(29.99)
        assert errors == [], "gave up before lock_timeout"
        assert len(time.sleepers) == 1  # still polling the store
        await time.elapse(0.01)
        assert len(errors) == 1, "still waiting at lock_timeout"
    assert str(errors[0]) == (
        "waited 30 s for the access token refresh of wxwait (another process holds the "
        "refresh lock)"
    )
    assert fetch.calls == 0


async def test_a_waiter_takes_the_lock_once_the_stuck_holder_s_ttl_ends() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    assert await store.try_lock("wxttl", 10) is not None  # a holder that crashed
    fetch = CountingFetcher(clock=time)
    manager = TokenManager(appid="wxttl", store=store, fetch=fetch, clock=time, sleep=time.sleep)
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await time.elapse(9.9)
        assert (got, fetch.calls) == ([], 0)
        await time.elapse(_defaults.TOKEN_POLL_MAX + 0.1)  # the next poll after the TTL
        assert fetch.calls == 1
    assert len(got) == 1


# ---------------------------------------------------------------------- lost compare-and-set


class TakeoverFetcher(CountingFetcher):
    """During its fetch, ``during(store)`` plays another process (its lock expired meanwhile)."""

    def __init__(self, store: MemoryTokenStore) -> None:
        super().__init__()
        self.store = store
        self.during: Callable[[MemoryTokenStore], Awaitable[None]] | None = None

    async def __call__(self, force_refresh: bool) -> AccessToken:
        token = await super().__call__(force_refresh)
        if self.during is not None:
            await self.during(self.store)
            self.during = None
        return token


async def test_holder_that_loses_the_lock_adopts_the_other_processs_token() -> None:
    store = MemoryTokenStore()
    fetch = TakeoverFetcher(store)
    manager = TokenManager(appid="wxcas", store=store, fetch=fetch, lock_ttl=60)
    theirs = AccessToken("theirs", time.time() + 7200)

    async def take_over(store: MemoryTokenStore) -> None:
        # Our lock expired; another process took it and is storing its token right now.
        store._locks["wxcas"] = ("elsewhere:1:x", time.monotonic() + 60)

    fetch.during = take_over
    ours = await manager.get()  # could not store: used for this one call
    assert ours != "theirs"
    assert await store.get("wxcas") is None
    assert await store.compare_and_set("wxcas", theirs, expected=None, fence="elsewhere:1:x")
    assert await store.unlock("wxcas", "elsewhere:1:x")
    # The next call uses the stored token, not the orphan no other process knows.
    assert await manager.get() == "theirs"
    assert fetch.calls == 1


async def test_holder_stores_its_token_when_the_store_was_emptied_meanwhile() -> None:
    store = MemoryTokenStore()
    fetch = TakeoverFetcher(store)
    await store.set("wxcas", AccessToken("old", time.time() + 200))  # refresh ahead
    manager = TokenManager(appid="wxcas", store=store, fetch=fetch)

    async def wipe(store: MemoryTokenStore) -> None:
        await store.delete("wxcas")

    fetch.during = wipe
    token = await manager.get()
    stored = await store.get("wxcas")
    assert stored is not None
    assert stored.value == token != "old"


async def test_force_refresh_is_never_retried_after_it_may_have_happened(fake: FakeWeChat) -> None:
    sleeps = SleepRecorder()
    async with fake.client(token_fetch_timeout=0.2, sleep=sleeps) as wx:
        await wx.access_token()
        fake.inject(KF_LIST, errcode=40001)
        fake.inject(STABLE, processed=True)  # the normal refetch passes (same token)...
        fake.inject(STABLE, delay=1.0)  # ...the force_refresh takes effect, its answer is late
        with pytest.raises(TokenFetchError) as info:
            await wx.kf.list()
    assert isinstance(info.value.__cause__, ResponseTimeoutError)
    forced = [r for r in fake.token_requests if r.json().get("force_refresh")]
    assert len(forced) == 1  # one of the 20 a day spent, not three
    assert len(fake.force_refreshes) == 1


async def test_minute_quota_on_the_token_endpoint_is_not_waited_out(
    fake: FakeWeChat, wx: AsyncWeChat, sleeps: SleepRecorder
) -> None:
    fake.inject(STABLE, errcode=45011)
    with pytest.raises(TokenFetchError) as info:
        await wx.access_token()
    assert isinstance(info.value.__cause__, MinuteQuotaError)
    assert sleeps.delays == []  # callers waiting on the refresh are not held for a minute
    assert len(fake.token_requests) == 1


@pytest.mark.parametrize(
    ("expires_in", "margin"), [(200, 300.0), (500, 600.0)], ids=["short-token", "long-margin"]
)
async def test_a_token_already_inside_the_margin_is_not_refetched_per_call(
    expires_in: int, margin: float
) -> None:
    fake = FakeWeChat(expires_in=expires_in)
    async with fake.client(refresh_margin=margin) as wx:
        for _ in range(51):
            await wx.kf.list()
    assert len(fake.token_requests) == 1
