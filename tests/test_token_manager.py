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
