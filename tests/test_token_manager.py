"""TokenManager and its pieces on fake time: every boundary that decides freshness and expiry.

test_tokens.py drives the manager through the client against the fake WeChat; here it runs on
its own (a CountingFetcher stands in for the token endpoint) so each comparison is checked at
its exact boundary: the refresh margin, the fallback validity, read-only expiry, lock TTLs,
WeChat's force-refresh limits, and what a token answer must hold.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wechat_kf import (
    AccessToken,
    ForceRefreshLimitedError,
    MalformedResponseError,
    MemoryTokenStore,
    TokenFetchError,
    TokenRefreshTimeoutError,
    TokenStoreError,
    TokenUnavailableError,
    _defaults,
)
from wechat_kf._errors import ServerBusyError
from wechat_kf._tokens import ForceRefreshClaim, TokenManager, claim_in, token_from_payload
from wechat_kf.testing import VirtualClock
from wechat_kf.testing.store_contract import CountingFetcher

pytestmark = pytest.mark.anyio

MARGIN = _defaults.TOKEN_REFRESH_MARGIN
FALLBACK = _defaults.TOKEN_FALLBACK_MIN_VALIDITY
BACKOFF = _defaults.TOKEN_REFRESH_BACKOFF


def at(clock: VirtualClock, when: float) -> None:
    """Move ``clock`` to ``when`` (forward only)."""
    clock.advance(when - clock())


def manager_on(time: VirtualClock, store: Any = None, fetch: Any = None, **kw: Any) -> TokenManager:
    return TokenManager(
        appid="wxapp",
        store=MemoryTokenStore(clock=time) if store is None else store,
        fetch=CountingFetcher(clock=time) if fetch is None else fetch,
        clock=time,
        sleep=time.sleep,
        **kw,
    )


# ---------------------------------------------------------------------- the token itself


def test_a_token_is_fresh_while_more_than_the_margin_is_left() -> None:
    token = AccessToken("t", 1000.0)
    assert token.remaining(900.0) == 100.0
    assert token.remaining(1100.0) == -100.0
    assert token.is_fresh(99.999, now=900.0)
    assert not token.is_fresh(100.0, now=900.0)  # exactly the margin left: not fresh
    assert repr(token) == "AccessToken(value='***', expires_at=1000.0)"


def test_remaining_defaults_to_the_wall_clock() -> None:
    import time

    token = AccessToken("t", time.time() + 100)
    assert 99 < token.remaining() <= 100
    assert token.is_fresh(90)


# ---------------------------------------------------------------------- when the manager refreshes


async def test_the_cached_token_is_used_until_exactly_the_margin() -> None:
    time = VirtualClock(start=0.0)
    fetch = CountingFetcher(clock=time, ttl=7200)
    manager = manager_on(time, fetch=fetch)
    token = await manager.get()
    at(time, 7200 - MARGIN - 0.001)
    assert await manager.get() == token
    assert fetch.calls == 1
    at(time, 7200 - MARGIN)  # exactly the margin left: refreshed
    assert await manager.get() != token
    assert fetch.calls == 2


async def test_a_failed_early_refresh_serves_the_token_only_above_the_fallback_validity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Down(CountingFetcher):
        down = False

        async def __call__(self, force_refresh: bool) -> AccessToken:
            if self.down:
                self.calls += 1
                raise ServerBusyError(-1, "system busy")
            return await super().__call__(force_refresh)

    time = VirtualClock(start=0.0)
    fetch = Down(clock=time)
    manager = manager_on(time, fetch=fetch)
    token = await manager.get()
    fetch.down = True
    at(time, 7200 - 200)  # inside the margin: refreshed ahead of expiry, which fails
    with caplog.at_level(logging.WARNING, logger="wechat_kf.tokens"):
        assert await manager.get() == token
    assert [r.getMessage() for r in caplog.records] == [
        "access token refresh for wxapp failed (TokenFetchError: could not get an access token "
        "for wxapp (ServerBusyError: errcode -1: system busy (WeChat is busy; retry later)); "
        "nothing was sent; the SDK asks the token endpoint again in 5 s); using the current "
        "token (valid 200 s more), next attempt in 5 s"
    ]
    assert fetch.calls == 2
    # Backing off: no fetch until BACKOFF has passed.
    time.advance(BACKOFF - 0.001)
    assert await manager.get() == token
    assert fetch.calls == 2
    at(time, 7200 - FALLBACK - 0.001)
    assert await manager.get() == token  # fails again; 30.001 s left: still handed out
    assert fetch.calls == 3
    at(time, 7200 - FALLBACK)  # exactly the fallback validity left: not handed out
    with pytest.raises(TokenFetchError):
        await manager.get()


async def test_a_token_already_inside_the_margin_waits_a_quarter_of_its_validity() -> None:
    # expires_in 200 s with a 300 s margin: used for (200 - 30) / 4 = 42.5 s before the next try.
    time = VirtualClock(start=0.0)
    fetch = CountingFetcher(clock=time, ttl=200)
    manager = manager_on(time, fetch=fetch)
    token = await manager.get()
    at(time, 42.499)
    assert await manager.get() == token
    assert fetch.calls == 1
    at(time, 42.5)
    await manager.get()
    assert fetch.calls == 2
    # A token with less than BACKOFF * 4 of spare validity waits BACKOFF.
    short = manager_on(time, fetch=CountingFetcher(clock=time, ttl=40))
    at(time, 1000.0)
    first = await short.get()
    at(time, 1000.0 + BACKOFF - 0.001)
    assert await short.get() == first


# ---------------------------------------------------------------------- read-only managers


async def test_read_only_hands_out_a_token_until_its_last_moment() -> None:
    time = VirtualClock(start=0.0)
    store = MemoryTokenStore(clock=time)
    manager = TokenManager(appid="wxro", store=store, fetch=None, clock=time, sleep=time.sleep)
    where = (
        "read-only token mode: the SDK never calls WeChat's token endpoint; check that your "
        "token service writes to this store"
    )
    with pytest.raises(TokenUnavailableError) as info:
        await manager.get()
    assert str(info.value) == f"the token store holds no access token for wxro ({where})"
    await store.set("wxro", AccessToken("inside-the-margin", 100.0))
    at(time, 99.999)
    assert await manager.get() == "inside-the-margin"
    at(time, 100.0)
    with pytest.raises(TokenUnavailableError) as info:
        await manager.get()
    assert str(info.value) == f"the stored access token for wxro expired 0 s ago ({where})"
    at(time, 130.4)
    with pytest.raises(TokenUnavailableError, match="expired 30 s ago"):
        await manager.get()
    await store.set("wxro", AccessToken("rejected", 7200.0))
    with pytest.raises(TokenUnavailableError) as info:
        await manager.recover("rejected")
    assert str(info.value) == (
        f"WeChat rejected the stored access token for wxro and the store holds no other ({where})"
    )
    assert manager.read_only
    assert repr(manager) == "TokenManager(appid='wxro', endpoint='read-only')"


# ---------------------------------------------------------------------- locks and the ledger


async def test_a_memory_lock_is_free_exactly_at_its_ttl() -> None:
    time = VirtualClock(start=0.0)
    store = MemoryTokenStore(clock=time)
    fence = await store.try_lock("wx", 10)
    assert fence is not None
    at(time, 9.75)
    assert await store.try_lock("wx", 10) is None
    assert await store.extend_lock("wx", fence, 10) is True  # now until 19.75
    at(time, 19.5)
    assert await store.try_lock("wx", 10) is None
    at(time, 19.75)
    assert await store.extend_lock("wx", fence, 10) is False
    assert await store.unlock("wx", fence) is False
    assert await store.try_lock("wx", 10) is not None


def test_force_refresh_claims_over_exactly_24_hours_and_30_seconds() -> None:
    history: collections.deque[float] = collections.deque()
    claims = [claim_in(history, now=t, per_day=3, min_interval=30) for t in (0, 30, 60)]
    assert claims == [ForceRefreshClaim.GRANTED] * 3
    assert claim_in(history, now=86_400, per_day=3, min_interval=30) is (
        ForceRefreshClaim.DAILY_LIMIT  # the first claim is exactly 24 h old: it still counts
    )
    assert list(history) == [0, 30, 60]  # a refused claim is not recorded
    assert claim_in(history, now=86_400.5, per_day=3, min_interval=30) is ForceRefreshClaim.GRANTED
    assert list(history) == [30, 60, 86_400.5]
    assert claim_in(history, now=86_430.4, per_day=5, min_interval=30) is ForceRefreshClaim.TOO_SOON
    assert claim_in(history, now=86_430.5, per_day=5, min_interval=30) is ForceRefreshClaim.GRANTED


@pytest.mark.parametrize("store", ["plain", "locking"])
async def test_force_refresh_limits_are_remembered_for_the_rejected_token(store: str) -> None:
    class SameToken(CountingFetcher):
        async def __call__(self, force_refresh: bool) -> AccessToken:
            await super().__call__(force_refresh)
            return AccessToken("stuck", self.clock() + 7200)  # type: ignore[misc]

    time = VirtualClock(start=0.0)
    fetch = SameToken(clock=time)
    chosen = PlainStore() if store == "plain" else MemoryTokenStore(clock=time)
    manager = manager_on(time, store=chosen, fetch=fetch)
    assert await manager.get() == "stuck"
    with pytest.raises(ForceRefreshLimitedError) as info:
        await manager.recover("stuck")  # refetched "stuck", forced: "stuck" again
    assert str(info.value) == (
        "WeChat rejected the access token of wxapp and force_refresh returned the rejected token "
        "again; nothing was sent; the SDK tries a force_refresh again in 30 s"
    )
    assert info.value.next_attempt_at == 30.0
    assert (fetch.calls, fetch.forced) == (3, 1)
    at(time, 29.999)
    with pytest.raises(ForceRefreshLimitedError) as info:
        await manager.recover("stuck")  # remembered: no request
    assert "(remembered: next force_refresh in 0 s)" in str(info.value)
    assert info.value.next_attempt_at == 30.0
    assert fetch.calls == 3
    at(time, 30.0)
    with pytest.raises(ForceRefreshLimitedError):
        await manager.recover("stuck")  # tried again: one refetch, one forced
    assert (fetch.calls, fetch.forced) == (5, 2)


async def test_a_failed_fetch_is_remembered_for_the_backoff() -> None:
    class Busy(CountingFetcher):
        async def __call__(self, force_refresh: bool) -> AccessToken:
            self.calls += 1
            raise ServerBusyError(-1, "system busy")

    time = VirtualClock(start=0.0)
    fetch = Busy(clock=time)
    manager = manager_on(time, fetch=fetch)
    with pytest.raises(TokenFetchError) as info:
        await manager.get()
    assert str(info.value) == (
        "could not get an access token for wxapp (ServerBusyError: errcode -1: system busy "
        "(WeChat is busy; retry later)); nothing was sent; the SDK asks the token endpoint "
        "again in 5 s"
    )
    assert info.value.next_attempt_at == BACKOFF
    at(time, BACKOFF - 0.001)
    with pytest.raises(TokenFetchError) as info:
        await manager.get()
    assert "(remembered: next attempt in 0.0 s)" in str(info.value)
    assert info.value.next_attempt_at == BACKOFF
    assert isinstance(info.value.__cause__, ServerBusyError)
    assert fetch.calls == 1
    at(time, BACKOFF)
    with pytest.raises(TokenFetchError):
        await manager.get()
    assert fetch.calls == 2


# ---------------------------------------------------------------------- what each store gets


class PlainStore:
    def __init__(self) -> None:
        self.tokens: dict[str, AccessToken] = {}

    async def get(self, appid: str) -> AccessToken | None:
        return self.tokens.get(appid)

    async def set(self, appid: str, token: AccessToken) -> None:
        self.tokens[appid] = token

    async def delete(self, appid: str) -> None:
        self.tokens.pop(appid, None)


@pytest.mark.parametrize("store", [PlainStore, MemoryTokenStore], ids=["plain", "locking"])
async def test_ordinary_fetches_never_spend_a_force_refresh(store: type) -> None:
    time = VirtualClock(start=0.0)
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store(), fetch=fetch)
    token = await manager.get()
    assert await manager.recover(token) != token
    at(time, 7200)
    await manager.get()
    assert (fetch.calls, fetch.forced) == (3, 0)


async def test_a_rejected_token_is_deleted_before_the_new_fetch() -> None:
    time = VirtualClock(start=0.0)
    store = MemoryTokenStore(clock=time)
    seen_during_fetch: list[AccessToken | None] = []

    class Watching(CountingFetcher):
        async def __call__(self, force_refresh: bool) -> AccessToken:
            seen_during_fetch.append(await store.get("wxapp"))
            return await super().__call__(force_refresh)

    manager = manager_on(time, store=store, fetch=Watching(clock=time))
    token = await manager.get()
    await manager.recover(token)
    assert seen_during_fetch == [None, None]  # the dead token is gone for every process


async def test_a_token_another_process_stored_meanwhile_is_adopted_not_deleted() -> None:
    time = VirtualClock(start=0.0)

    class Racing(MemoryTokenStore):
        async def compare_and_delete(self, appid: str, value: str) -> bool:
            # Another process replaced the rejected token just before our delete.
            await self.set(appid, AccessToken("theirs", time() + 7200))
            return await super().compare_and_delete(appid, value)

    store = Racing(clock=time)
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    await store.set("wxapp", AccessToken("rejected", 7200))
    assert await manager.recover("rejected") == "theirs"
    assert fetch.calls == 0
    stored = await store.get("wxapp")
    assert stored is not None
    assert stored.value == "theirs"


async def test_one_failed_renewal_does_not_end_the_renewals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wechat_kf.tokens")
    time = VirtualClock(start=0.0)

    class Blip(MemoryTokenStore):
        failures = 1
        renewals = 0

        async def extend_lock(self, appid: str, fence: str, ttl: float) -> bool:
            self.renewals += 1
            if self.failures:
                self.failures -= 1
                raise TokenStoreError("Redis lock renewal for wxapp failed: blip")
            return await super().extend_lock(appid, fence, ttl)

    store = Blip(clock=time)
    fetch = CountingFetcher(delay=30, clock=time)  # twice the 15 s lock
    first, second = manager_on(time, store=store, fetch=fetch), manager_on(time, store, fetch)
    results: list[str] = []

    async def call(manager: TokenManager) -> None:
        results.append(await manager.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, first)
        await time.elapse(1)
        tg.start_soon(call, second)
        while len(results) < 2:
            await time.elapse(1)
    assert fetch.calls == 1, "the lock expired after one failed renewal"
    assert "refresh lock for wxapp not renewed: Redis lock renewal for wxapp failed: blip" in [
        r.getMessage() for r in caplog.records
    ]
    assert len(set(results)) == 1
    assert store.renewals == 5  # every 5 s while the 30 s fetch runs, the first one failing


async def test_the_lock_is_released_when_the_refresh_is_cancelled() -> None:
    time = VirtualClock(start=0.0)

    class Remote(MemoryTokenStore):
        """Its unlock is a round trip: a cancellation point."""

        async def unlock(self, appid: str, fence: str) -> bool:
            await anyio.lowlevel.checkpoint()
            return await super().unlock(appid, fence)

    store = Remote(clock=time)
    manager = manager_on(time, store=store, fetch=CountingFetcher(delay=60, clock=time))
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.get)
        await time.elapse(1)  # fetching, holding the lock
        assert await store.try_lock("wxapp", 10) is None
        tg.cancel_scope.cancel()
    assert await store.try_lock("wxapp", 10) is not None, "a cancelled refresh kept its lock"


async def test_managers_keep_their_defaults() -> None:
    manager = TokenManager(appid="wx", store=MemoryTokenStore(), fetch=CountingFetcher())
    assert (manager.refresh_margin, manager.lock_timeout, manager.lock_ttl) == (300, 30, 15)
    assert manager.endpoint.value == "stable"
    assert repr(manager) == "TokenManager(appid='wx', endpoint='stable')"
    assert not manager.read_only


# ---------------------------------------------------------------------- a token answer


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "token response has no access_token string"),
        ({"access_token": ""}, "token response has no access_token string"),
        ({"access_token": 12345}, "token response has no access_token string"),
        ({"access_token": ["t"]}, "token response has no access_token string"),
        *[
            (
                {"access_token": value, "expires_in": 7200},
                "token response: access_token is not usable in a URL (printable ASCII without "
                "space, '#', '%', '&' or '+', at most 2048 characters; got "
                f"{len(value)} characters)",
            )
            for value in ["a b", "a#b", "a%b", "a&b", "a+b", "中", "a\nb", "x" * 2049]
        ],
        *[
            (
                {"access_token": "t", "expires_in": value},
                "token response has no expires_in in 1..2592000 seconds",
            )
            for value in [0, -1, 2_592_001, 7200.5, True, None, "", "7200s", "1e3", [7200]]
        ],
    ],
)
def test_an_unusable_token_answer_is_malformed(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedResponseError) as info:
        token_from_payload(payload, 1000.0)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [(1, 1), (7200, 7200), (2_592_000, 2_592_000), ("7200", 7200), (" 60 ", 60), (90.0, 90)],
)
def test_a_usable_token_answer(expires_in: object, lifetime: int) -> None:
    value = "A-z_0.9~!" + "x" * 2039  # 2048 characters of what travels in a URL
    token = token_from_payload({"access_token": value, "expires_in": expires_in}, 1000.5)
    assert token == AccessToken(value, 1000.5 + lifetime)


# ---------------------------------------------------------------------- waiting for another process


async def test_a_zero_lock_timeout_gives_up_at_once_without_sleeping() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    assert await store.try_lock("wxapp", 3600) is not None  # another process, stuck
    manager = manager_on(time, store=store, lock_timeout=0)
    with anyio.fail_after(10), pytest.raises(TokenRefreshTimeoutError):
        await manager.get()
    assert time.requested == []


async def test_polling_another_process_backs_off_with_jitter_up_to_the_cap() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    assert await store.try_lock("wxapp", 3600) is not None
    manager = manager_on(time, store=store, lock_timeout=60)
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.get)
        await time.elapse(2)
        tg.cancel_scope.cancel()
    delays = time.requested[:7]
    first = _defaults.TOKEN_POLL_INITIAL
    for n, delay in enumerate(delays):
        base = min(first * 2**n, _defaults.TOKEN_POLL_MAX)
        assert 0.75 * base <= delay <= base, (n, delays)


async def test_an_early_refresh_blocked_by_another_process_looks_again_later() -> None:
    time = VirtualClock()

    class Counting(MemoryTokenStore):
        attempts = 0

        async def try_lock(self, appid: str, ttl: float) -> str | None:
            self.attempts += 1
            return await super().try_lock(appid, ttl)

    store = Counting(clock=time)
    manager = manager_on(time, store=store)
    token = await manager.get()
    time.advance(7200 - 200)
    assert await store.try_lock("wxapp", 3600) is not None  # another process refreshes
    store.attempts = 0
    assert await manager.get() == token  # the spare, at once
    assert store.attempts == 1
    # It looks again after a quarter of the spare's validity left over the fallback minimum:
    # (200 - 30) / 4 = 42.5 s.
    time.advance(42.25)
    assert await manager.get() == token
    assert store.attempts == 1
    time.advance(0.25)
    assert await manager.get() == token
    assert store.attempts == 2


async def test_a_token_with_exactly_the_margin_left_is_not_refetched_per_call() -> None:
    time = VirtualClock()
    fetch = CountingFetcher(clock=time, ttl=MARGIN)
    manager = manager_on(time, fetch=fetch)
    token = await manager.get()
    assert await manager.get() == token
    assert fetch.calls == 1


async def test_the_in_process_lock_wait_serves_a_valid_token_but_not_a_rejected_one() -> None:
    time = VirtualClock()
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, fetch=fetch, lock_timeout=0.05)  # the in-process wait: real time
    token = await manager.get()
    time.advance(7200 - 200)  # inside the margin: a refresh is due
    fetch.delay = 3600  # the refresh hangs on the virtual clock
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.recover, "someone-elses")  # holds the in-process lock
        await time.elapse(0)
        with pytest.raises(TokenRefreshTimeoutError):
            await manager.recover(token)  # the rejected token is never handed out
        tg.cancel_scope.cancel()


# ---------------------------------------------------------------------- forgetting


async def test_invalidate_forgets_the_token_and_what_was_remembered() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    first = await manager.get()
    await manager.invalidate()
    assert await store.get("wxapp") is None
    assert await manager.get() != first
    assert fetch.calls == 2
    # Read-only: only the in-memory copy goes; the store belongs to the token service.
    reader = TokenManager(appid="wxapp", store=store, fetch=None, clock=time, sleep=time.sleep)
    stored = await reader.get()
    await reader.invalidate()
    assert (await store.get("wxapp")) is not None
    assert await reader.get() == stored


def test_a_fence_names_its_host_and_process() -> None:
    import os
    import re
    import socket

    from wechat_kf import new_fence

    fence = new_fence()
    host, pid, token = fence.rsplit(":", 2)
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert re.fullmatch(r"[0-9a-f]{16}", token)
    assert new_fence() != fence


# ---------------------------------------------------------------------- which token is served


def serial(value: str) -> str:
    """Which of a CountingFetcher's tokens ``value`` is: ``fetched1``, ``fetched2``..."""
    return value.partition("-")[0]


class BusyFetcher(CountingFetcher):
    """The token endpoint answers "system busy" while ``down``."""

    down = True

    async def __call__(self, force_refresh: bool) -> AccessToken:
        if self.down:
            self.calls += 1
            raise ServerBusyError(-1, "system busy")
        return await super().__call__(force_refresh)


class LockingOnly:
    """A user's shared store with a lock but without ``extend_lock`` or a force-refresh ledger.

    Its backend is a :class:`MemoryTokenStore`; only the six methods of the contract show.
    """

    def __init__(self, time: VirtualClock) -> None:
        self.backend = MemoryTokenStore(clock=time)

    async def get(self, appid: str) -> AccessToken | None:
        return await self.backend.get(appid)

    async def set(self, appid: str, token: AccessToken) -> None:
        await self.backend.set(appid, token)

    async def delete(self, appid: str) -> None:
        await self.backend.delete(appid)

    async def try_lock(self, appid: str, ttl: float) -> str | None:
        return await self.backend.try_lock(appid, ttl)

    async def unlock(self, appid: str, fence: str) -> bool:
        return await self.backend.unlock(appid, fence)

    async def compare_and_set(
        self, appid: str, token: AccessToken, *, expected: str | None, fence: str | None = None
    ) -> bool:
        return await self.backend.compare_and_set(appid, token, expected=expected, fence=fence)

    async def compare_and_delete(self, appid: str, value: str) -> bool:
        return await self.backend.compare_and_delete(appid, value)


def store_of(kind: str, time: VirtualClock) -> Any:
    if kind == "plain":
        return PlainStore()
    if kind == "locking":
        return MemoryTokenStore(clock=time)
    return LockingOnly(time)


STORE_KINDS = ["plain", "locking", "locking-without-renewal"]


def test_a_locking_store_without_renewal_is_what_it_says() -> None:
    from wechat_kf._tokens import ForceRefreshLedger, LockExtender, LockingTokenStore

    store = LockingOnly(VirtualClock())
    assert isinstance(store, LockingTokenStore)
    assert not isinstance(store, LockExtender)
    assert not isinstance(store, ForceRefreshLedger)


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_a_new_manager_serves_the_stored_token_when_its_early_refresh_fails(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    time = VirtualClock(start=1000.0)
    store = store_of(kind, time)
    await store.set("wxapp", AccessToken("stored", 1200.0))  # 200 s left: inside the margin
    fetch = BusyFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    with caplog.at_level(logging.WARNING, logger="wechat_kf.tokens"):
        assert await manager.get() == "stored"
    assert fetch.calls == 1
    assert "using the current token (valid 200 s more)" in caplog.text
    assert await manager.get() == "stored"  # backing off: no new attempt
    assert fetch.calls == 1
    # A recovery never falls back, not even on another valid token.
    with pytest.raises(TokenFetchError):
        await manager.recover("stored")


async def test_a_new_manager_blocked_by_another_process_serves_the_stored_token_at_once() -> None:
    time = VirtualClock(start=1000.0)
    store = MemoryTokenStore(clock=time)
    await store.set("wxapp", AccessToken("stored", 1200.0))  # inside the margin
    assert await store.try_lock("wxapp", 3600) is not None  # another process refreshes
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await time.elapse(0)  # no time passes: a caller that polled would still be waiting
        tg.cancel_scope.cancel()
    assert got == ["stored"]
    assert (fetch.calls, time.requested) == (0, [])


async def test_a_poller_takes_the_token_the_lock_holder_stores() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    fence = await store.try_lock("wxapp", 3600)
    assert fence is not None
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await time.elapse(1)
        assert got == []
        assert await store.compare_and_set(
            "wxapp", AccessToken("theirs", 7200), expected=None, fence=fence
        )
        await time.elapse(_defaults.TOKEN_POLL_MAX)
        tg.cancel_scope.cancel()  # a caller still waiting fails the test below, not hangs
    assert got == ["theirs"]
    assert fetch.calls == 0


async def test_a_recovering_poller_waits_past_the_rejected_and_a_stale_token() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    await store.set("wxapp", AccessToken("rejected", 7200))
    fence = await store.try_lock("wxapp", 3600)
    assert fence is not None
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.recover("rejected"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await time.elapse(2)
        assert got == [], "the rejected token was handed back"
        await store.set("wxapp", AccessToken("stale", time() + MARGIN))  # not fresh
        await time.elapse(2)
        assert got == [], "a token inside the margin was handed back"
        await store.set("wxapp", AccessToken("theirs", time() + 7200))
        await time.elapse(_defaults.TOKEN_POLL_MAX)
        tg.cancel_scope.cancel()  # a caller still waiting fails the test below, not hangs
    assert got == ["theirs"]
    assert fetch.calls == 0


@pytest.mark.parametrize("other", ["inside-the-margin", "the-rejected-again"])
async def test_after_a_lost_compare_and_delete_only_a_fresh_other_token_is_used(
    other: str,
) -> None:
    time = VirtualClock()

    class Racing(MemoryTokenStore):
        async def compare_and_delete(self, appid: str, value: str) -> bool:
            # Another process replaced the rejected token just before our delete...
            await self.set(appid, AccessToken("theirs", time() + MARGIN))
            deleted = await super().compare_and_delete(appid, value)
            if other == "the-rejected-again":  # ...and a stale one wrote it back right after
                await self.set(appid, AccessToken(value, time() + 7200))
            return deleted

    store = Racing(clock=time)
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    await store.set("wxapp", AccessToken("rejected", 7200))
    assert serial(await manager.recover("rejected")) == "fetched1"
    stored = await store.get("wxapp")
    assert stored is not None
    assert serial(stored.value) == "fetched1"


# ---------------------------------------------------------------------- a holder's compare-and-set


class Meanwhile(CountingFetcher):
    """During its next fetch, ``during()`` plays another process writing the store."""

    during: Any = None

    async def __call__(self, force_refresh: bool) -> AccessToken:
        token = await super().__call__(force_refresh)
        if self.during is not None:
            await self.during()
            self.during = None
        return token


@pytest.mark.parametrize(
    ("left", "adopted"), [(FALLBACK + 0.001, True), (FALLBACK, False)], ids=["valid", "expiring"]
)
async def test_a_holder_adopts_a_still_valid_token_stored_during_its_fetch(
    left: float, adopted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    time = VirtualClock(start=1000.0)
    store = MemoryTokenStore(clock=time)
    fetch = Meanwhile(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)

    async def write() -> None:
        await store.set("wxapp", AccessToken("theirs", time() + left))

    fetch.during = write
    with caplog.at_level(logging.INFO, logger="wechat_kf.tokens"):
        served = await manager.get()
    stored = await store.get("wxapp")
    assert stored is not None
    messages = [r.getMessage() for r in caplog.records]
    changed = "access token for wxapp changed in the store during the refresh: using the stored one"
    if adopted:
        assert (served, stored.value) == ("theirs", "theirs")
        assert messages == [changed]
    else:  # about to expire: ours replaces it
        assert (serial(served), serial(stored.value)) == ("fetched1", "fetched1")
        assert messages == []
    assert fetch.calls == 1


async def test_a_holder_never_adopts_the_rejected_token_written_back_during_its_fetch() -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    fetch = Meanwhile(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    await store.set("wxapp", AccessToken("rejected", 7200))

    async def write_back() -> None:  # a process with a stale copy stores the dead token again
        await store.set("wxapp", AccessToken("rejected", 7200))

    fetch.during = write_back
    assert serial(await manager.recover("rejected")) == "fetched1"
    stored = await store.get("wxapp")
    assert stored is not None
    assert serial(stored.value) == "fetched1"


async def test_a_store_that_keeps_changing_gets_two_attempts_then_the_token_serves_one_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = VirtualClock()

    class Churning(MemoryTokenStore):
        attempts = 0

        async def compare_and_set(
            self, appid: str, token: AccessToken, *, expected: str | None, fence: str | None = None
        ) -> bool:
            # Right before each of our writes another process stores a token about to expire.
            self.attempts += 1
            await self.set(appid, AccessToken(f"churn{self.attempts}", time() + 10))
            return await super().compare_and_set(appid, token, expected=expected, fence=fence)

    store = Churning(clock=time)
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    with caplog.at_level(logging.WARNING, logger="wechat_kf.tokens"):
        assert serial(await manager.get()) == "fetched1"
    assert store.attempts == 2
    assert [r.getMessage() for r in caplog.records] == [
        "access token for wxapp not stored: the store keeps changing during the refresh"
    ]
    assert (
        serial(await manager.get()) == "fetched2"
    )  # not cached: the next call reads the store again


async def test_a_token_the_store_cannot_take_is_kept_in_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = VirtualClock()

    class Down(MemoryTokenStore):
        async def compare_and_set(
            self, appid: str, token: AccessToken, *, expected: str | None, fence: str | None = None
        ) -> bool:
            raise TokenStoreError("Redis write for wxapp failed: blip")

    store = Down(clock=time)
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    with caplog.at_level(logging.WARNING, logger="wechat_kf.tokens"):
        assert serial(await manager.get()) == "fetched1"
    assert [r.getMessage() for r in caplog.records] == [
        "access token for wxapp not stored: Redis write for wxapp failed: blip"
    ]
    assert serial(await manager.get()) == "fetched1"
    assert fetch.calls == 1
    assert await store.get("wxapp") is None


# ---------------------------------------------------------------------- the refresh lock


async def test_a_lock_the_store_cannot_release_is_left_to_expire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = VirtualClock()

    class NoUnlock(MemoryTokenStore):
        async def unlock(self, appid: str, fence: str) -> bool:
            raise TokenStoreError("Redis unlock for wxapp failed: blip")

    store = NoUnlock(clock=time)
    manager = manager_on(time, store=store)
    with caplog.at_level(logging.WARNING, logger="wechat_kf.tokens"):
        assert serial(await manager.get()) == "fetched1"
    assert [r.getMessage() for r in caplog.records] == [
        "refresh lock for wxapp not released: Redis unlock for wxapp failed: blip"
    ]
    assert await store.try_lock("wxapp", 10) is None
    at(time, 15.0)  # the lock's TTL
    assert await store.try_lock("wxapp", 10) is not None


async def test_a_lock_lost_during_a_slow_fetch_is_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = VirtualClock()

    class Counting(MemoryTokenStore):
        renewals = 0

        async def extend_lock(self, appid: str, fence: str, ttl: float) -> bool:
            self.renewals += 1
            return await super().extend_lock(appid, fence, ttl)

    store = Counting(clock=time)
    fetch = CountingFetcher(delay=60, clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.get())

    with caplog.at_level(logging.WARNING, logger="wechat_kf.tokens"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await time.elapse(0)
            time.advance(20)  # the process stalled: the renewal due at 5 s runs at 20 s
            await time.elapse(60)
            tg.cancel_scope.cancel()
    assert [serial(t) for t in got] == ["fetched1"]
    assert store.renewals == 1  # lost: no more renewals
    assert [r.getMessage() for r in caplog.records] == [
        "refresh lock for wxapp expired during the refresh; another process may fetch"
    ]


async def test_without_renewal_a_fetch_slower_than_the_lock_cannot_overwrite_the_next_holder() -> (
    None
):
    time = VirtualClock()
    store = LockingOnly(time)
    fetch = CountingFetcher(delay=20, clock=time)  # longer than the 15 s lock
    manager = manager_on(time, store=store, fetch=fetch)
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await time.elapse(15)  # never renewed: the lock is free at its TTL
        fence = await store.try_lock("wxapp", 60)  # another process takes it
        assert fence is not None
        await time.elapse(10)
        tg.cancel_scope.cancel()
    assert [serial(t) for t in got] == ["fetched1"]  # used for this call...
    assert await store.get("wxapp") is None  # ...but not stored under the other's lock
    assert await store.compare_and_set(
        "wxapp", AccessToken("theirs", time() + 7200), expected=None, fence=fence
    )
    assert await manager.get() == "theirs"
    assert fetch.calls == 1


@pytest.mark.parametrize("kind", STORE_KINDS)
async def test_every_store_kind_refreshes_and_recovers(kind: str) -> None:
    time = VirtualClock()
    store = store_of(kind, time)
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    first = await manager.get()
    second = await manager.recover(first)
    assert [serial(first), serial(second)] == ["fetched1", "fetched2"]
    assert await manager.recover(first) == second  # already replaced: no fetch
    at(time, 7200 - MARGIN)
    assert serial(await manager.get()) == "fetched3"
    stored = await store.get("wxapp")
    assert stored is not None
    assert serial(stored.value) == "fetched3"
    assert (fetch.calls, fetch.forced, manager.fetch_count) == (3, 0, 3)


# ---------------------------------------------------------------------- force refresh


class StuckFetcher(CountingFetcher):
    """The token endpoint hands back ``stuck`` until ``force_refresh`` (if ``forced_works``)."""

    forced_works = False

    async def __call__(self, force_refresh: bool) -> AccessToken:
        token = await super().__call__(force_refresh)
        if force_refresh and self.forced_works:
            return token
        return AccessToken("stuck", token.expires_at)


async def test_a_force_refresh_that_works_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    fetch = StuckFetcher(clock=time)
    fetch.forced_works = True
    manager = manager_on(time, store=store, fetch=fetch)
    with caplog.at_level(logging.DEBUG, logger="wechat_kf.tokens"):
        assert await manager.get() == "stuck"
        assert serial(await manager.recover("stuck")) == "fetched3"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("DEBUG", "fetching access token for wxapp (force_refresh=False)"),
        ("DEBUG", "fetching access token for wxapp (force_refresh=False)"),
        ("WARNING", "access token for wxapp rejected though current: force_refresh"),
        ("DEBUG", "fetching access token for wxapp (force_refresh=True)"),
    ]
    assert (manager.fetch_count, fetch.forced) == (3, 1)
    # The claim went to the store's ledger, under this appid: another process is refused.
    claim = await store.claim_force_refresh("wxapp", now=time() + 1, per_day=20, min_interval=30)
    assert claim is ForceRefreshClaim.TOO_SOON


async def test_the_classic_endpoint_returning_the_rejected_token_is_refused_and_remembered() -> (
    None
):
    from wechat_kf._tokens import TokenEndpoint

    time = VirtualClock()
    fetch = StuckFetcher(clock=time)
    manager = manager_on(time, fetch=fetch, endpoint=TokenEndpoint.CLASSIC)
    assert await manager.get() == "stuck"
    with pytest.raises(ForceRefreshLimitedError) as info:
        await manager.recover("stuck")
    assert str(info.value) == (
        "WeChat rejected the access token of wxapp and the token endpoint returned the rejected "
        "token again; nothing was sent; the SDK tries a force_refresh again in 30 s"
    )
    assert info.value.next_attempt_at == 30.0
    assert (fetch.calls, fetch.forced) == (2, 0)
    with pytest.raises(ForceRefreshLimitedError, match="remembered"):
        await manager.recover("stuck")
    assert fetch.calls == 2


@pytest.mark.parametrize("limit", ["daily", "interval"])
async def test_a_force_refresh_the_ledger_refuses_is_explained_and_remembered(limit: str) -> None:
    time = VirtualClock(start=100_000.0)
    store = MemoryTokenStore(clock=time)
    # Other processes sharing the store spent the budget: 20 claims, or one 10 s ago.
    claims = [time() - 3000 + 60 * n for n in range(20)] if limit == "daily" else [time() - 10]
    for when in claims:
        granted = await store.claim_force_refresh("wxapp", now=when, per_day=20, min_interval=30)
        assert granted is ForceRefreshClaim.GRANTED
    await store.claim_force_refresh("wxother", now=time() - 1, per_day=1, min_interval=30)
    fetch = StuckFetcher(clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    assert await manager.get() == "stuck"
    with pytest.raises(ForceRefreshLimitedError) as info:
        await manager.recover("stuck")
    reason = (
        "stable_token keeps returning a rejected token and force_refresh was used 20 times in "
        "24 h (WeChat's daily limit)"
        if limit == "daily"
        else "stable_token returned a rejected token and the last force_refresh was less than "
        "30 s ago (WeChat's minimum interval)"
    )
    assert str(info.value) == (
        f"WeChat rejected the access token of wxapp and {reason}; nothing was sent; the SDK "
        "tries a force_refresh again in 30 s"
    )
    assert info.value.next_attempt_at == time() + 30
    assert (fetch.calls, fetch.forced) == (2, 0)
    with pytest.raises(ForceRefreshLimitedError, match="remembered"):
        await manager.recover("stuck")  # the same token: no request
    assert fetch.calls == 2


# ---------------------------------------------------------------------- the in-process lock


async def test_waiting_for_this_process_s_refresh_serves_a_valid_token_until_the_fallback() -> None:
    time = VirtualClock()
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, fetch=fetch, lock_timeout=0.05)  # the in-process wait: real time
    token = await manager.get()
    at(time, 7200 - 200)  # inside the margin
    fetch.delay = 3600  # the next fetch hangs on the virtual clock
    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.recover, "someone-elses")  # holds the in-process lock
        await time.elapse(0)
        assert await manager.get() == token  # timed out waiting: the token still works
        at(time, 7200 - FALLBACK - 0.001)
        assert await manager.get() == token
        at(time, 7200 - FALLBACK)
        with pytest.raises(TokenRefreshTimeoutError):
            await manager.get()
        tg.cancel_scope.cancel()
    assert fetch.calls == 2


async def test_a_caller_that_waited_on_the_lock_uses_the_token_just_refreshed() -> None:
    class Watched(MemoryTokenStore):
        reads = locks = 0

        async def get(self, appid: str) -> AccessToken | None:
            self.reads += 1
            return await super().get(appid)

        async def try_lock(self, appid: str, ttl: float) -> str | None:
            self.locks += 1
            return await super().try_lock(appid, ttl)

    time = VirtualClock()
    store = Watched(clock=time)
    fetch = CountingFetcher(delay=1, clock=time)
    manager = manager_on(time, store=store, fetch=fetch)
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.get())

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(call)
        await time.elapse(1)
        tg.cancel_scope.cancel()
    assert len(got) == 5
    assert len(set(got)) == 1
    assert (fetch.calls, store.locks, store.reads) == (1, 1, 1)


async def test_a_caller_that_waited_on_a_recovery_backs_off_with_its_short_token() -> None:
    # The recovery's new token is already inside the margin: it is used for a while, and a
    # caller that queued behind the recovery does not refresh it at once.
    time = VirtualClock()
    fetch = CountingFetcher(clock=time)
    manager = manager_on(time, fetch=fetch)
    first = await manager.get()
    at(time, 7200 - 200)
    fetch.delay, fetch.ttl = 10, 200
    got: list[str] = []

    async def call() -> None:
        got.append(await manager.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(manager.recover, first)  # holds the in-process lock for 10 s
        await time.elapse(0)
        tg.start_soon(call)  # first is valid but a refresh is due: waits for the lock
        await time.elapse(10)
        tg.cancel_scope.cancel()
    assert [serial(t) for t in got] == ["fetched2"]
    assert fetch.calls == 2


@pytest.mark.parametrize("theirs", [7200.0, 7199.999], ids=["same-expiry", "earlier"])
async def test_a_failed_early_refresh_serves_the_store_s_token_unless_ours_lasts_longer(
    theirs: float,
) -> None:
    time = VirtualClock()
    store = MemoryTokenStore(clock=time)
    fetch = BusyFetcher(clock=time)
    fetch.down = False
    manager = manager_on(time, store=store, fetch=fetch)
    ours = await manager.get()  # expires at 7200
    await store.set("wxapp", AccessToken("theirs", theirs))  # another process's token
    fetch.down = True
    at(time, 7200 - 200)
    assert await manager.get() == ("theirs" if theirs == 7200.0 else ours)
