"""A reusable test suite for token stores: run it on yours.

Subclass :class:`TokenStoreContract` in one of your test modules (the name must start with
``Test``) and give it a ``store`` fixture; pytest with the anyio plugin (``pip install anyio
pytest``) runs every contract test against your store::

    import pytest
    from wechat_kf.testing.store_contract import TokenStoreContract


    class TestMyStore(TokenStoreContract):
        require_locking = True  # fail, instead of skip, if MyStore is not a LockingTokenStore
        require_lock_extension = True  # ... or has no extend_lock (LockExtender)

        @pytest.fixture
        async def store(self):
            store = await MyStore.connect(...)
            yield store
            await store.close()

The tests use a fresh random appid each, so a store on a shared database needs no cleanup. The
tests of the optional layers (:class:`~wechat_kf.LockingTokenStore`, its lock renewal
``extend_lock``, :class:`~wechat_kf.ForceRefreshLedger`) are skipped for stores that do not
implement them, unless ``require_locking`` / ``require_lock_extension`` / ``require_ledger`` say
they must. The suite runs on whatever
``anyio_backend`` your tests use (override that fixture in the subclass to pin one, for example
``"asyncio"`` for a store built on an asyncio-only client).

Time: by default the lock tests run on real time, as a store on a server (Redis) must: about 5 s
of sleeping in all, with margins that hold on a loaded machine (a lock that must expire is waited
out twice over; one that must stay held is renewed with 0.8 s or more to spare before it would
expire). A store whose clock you can replace overrides the ``clock`` fixture with a
:class:`~wechat_kf.testing.VirtualClock` and builds the store on it; then nothing sleeps, and
the token managers of the tests wait on the same virtual clock::

    class TestMyMemoryStore(TokenStoreContract):
        @pytest.fixture
        def clock(self):
            return VirtualClock()

        @pytest.fixture
        def store(self, clock):
            return MyMemoryStore(clock=clock)
"""

from __future__ import annotations

import functools
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import anyio
import pytest

from wechat_kf._tokens import (
    AccessToken,
    ForceRefreshClaim,
    ForceRefreshLedger,
    LockExtender,
    LockingTokenStore,
    TokenManager,
    TokenStore,
)
from wechat_kf.testing._clock import Advance, VirtualClock

__all__ = ["Advance", "CountingFetcher", "TokenStoreContract"]

#: A token as long as WeChat says tokens may be (512 characters), of every URL-safe character.
_LONG = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" * 8)[:512]

#: Real-time margins (on a fake clock they cost nothing). A lock that must expire gets
#: ``_SHORT_TTL`` and the test waits ``_PAST_SHORT_TTL``: more than twice as long, and a busy
#: machine only makes the wait longer. A lock that must stay held is renewed with a TTL
#: ``_HELD_TTL`` or more ahead of the moment it is checked.
_SHORT_TTL = 0.2
_PAST_SHORT_TTL = 0.45
_HELD_TTL = 1.0
#: How often a test waiting for its concurrent calls looks (and moves a fake clock).
_STEP = 0.05


def _token(tag: str, ttl: float = 7200.0, clock: Callable[[], float] = time.time) -> AccessToken:
    return AccessToken(f"{tag}-{uuid.uuid4().hex}", clock() + ttl)


class CountingFetcher:
    """A stand-in for WeChat's token endpoint: new token per call, counted, optionally slow.

    ``delay`` is waited on ``clock`` (a :class:`~wechat_kf.testing.VirtualClock`; real time when
    ``None``), and the tokens expire ``ttl`` seconds after the fetch on that clock.
    """

    def __init__(
        self, delay: float = 0.0, ttl: float = 7200.0, *, clock: VirtualClock | None = None
    ) -> None:
        self.delay = delay
        self.ttl = ttl
        self.clock = clock
        self.calls: int = 0
        self.forced: int = 0
        self._serial = itertools.count(1)

    async def __call__(self, force_refresh: bool) -> AccessToken:
        """Return a new token after ``delay`` seconds."""
        self.calls += 1
        self.forced += force_refresh
        if self.clock is None:
            await anyio.sleep(self.delay)
            return _token(f"fetched{next(self._serial)}", self.ttl)
        await self.clock.sleep(self.delay)
        return _token(f"fetched{next(self._serial)}", self.ttl, self.clock)


class TokenStoreContract:
    """The token store contract as pytest tests. Subclass it and define a ``store`` fixture."""

    #: Fail (instead of skip) the lock and compare-and-set tests if the store lacks them.
    require_locking: ClassVar[bool] = False
    #: Fail (instead of skip) the lock renewal tests if the store has no ``extend_lock``.
    require_lock_extension: ClassVar[bool] = False
    #: Fail (instead of skip) the force-refresh ledger tests if the store lacks it.
    require_ledger: ClassVar[bool] = False

    @pytest.fixture
    def store(self) -> TokenStore:
        """The store under test: override this fixture in your subclass."""
        raise NotImplementedError("define a `store` fixture in your TokenStoreContract subclass")

    @pytest.fixture
    def clock(self) -> VirtualClock | None:
        """The store's clock: ``None``, real time (override it with a ``VirtualClock``)."""
        return None

    @pytest.fixture
    def advance(self, clock: VirtualClock | None) -> Advance:
        """Moves time forward: ``clock.elapse``, or a real sleep when ``clock`` is ``None``."""
        return anyio.sleep if clock is None else clock.elapse

    @pytest.fixture
    def appid(self) -> str:
        """A fresh appid per test, so tests never see each other's keys."""
        return f"wxcontract{uuid.uuid4().hex[:12]}"

    def locking(self, store: TokenStore) -> LockingTokenStore:
        """``store`` as a :class:`LockingTokenStore`, or skip (fail if required)."""
        if isinstance(store, LockingTokenStore):
            return store
        message = f"{type(store).__name__} is not a LockingTokenStore (optional)"
        if self.require_locking:
            pytest.fail(message)
        pytest.skip(message)

    def extender(self, store: TokenStore) -> LockExtender:
        """``store`` as a :class:`LockingTokenStore` with ``extend_lock``, or skip (or fail)."""
        self.locking(store)
        if isinstance(store, LockExtender):
            return store
        message = f"{type(store).__name__} has no extend_lock (optional LockExtender)"
        if self.require_lock_extension:
            pytest.fail(message)
        pytest.skip(message)

    def ledger(self, store: TokenStore) -> ForceRefreshLedger:
        """``store`` as a :class:`ForceRefreshLedger`, or skip (fail if required)."""
        if isinstance(store, ForceRefreshLedger):
            return store
        message = f"{type(store).__name__} is not a ForceRefreshLedger (optional)"
        if self.require_ledger:
            pytest.fail(message)
        pytest.skip(message)

    @staticmethod
    def manager(store: TokenStore, appid: str, fetch: CountingFetcher, **kw: Any) -> TokenManager:
        """A :class:`TokenManager` on ``store``, as each process of an application makes one.

        It reads the time from, and waits on, the fetcher's clock (when it has one).
        """
        if fetch.clock is not None:
            kw = {"clock": fetch.clock, "sleep": fetch.clock.sleep, **kw}
        return TokenManager(appid=appid, store=store, fetch=fetch, **kw)

    @staticmethod
    async def run_all(advance: Advance, *calls: Callable[[], Awaitable[str]]) -> list[str]:
        """Run ``calls`` concurrently, moving time on until all are done; their results."""
        results: list[str] = []

        async def one(call: Callable[[], Awaitable[str]]) -> None:
            results.append(await call())

        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(one, call)
            while len(results) < len(calls):
                await advance(_STEP)
        return results

    # ------------------------------------------------------------------ TokenStore

    @pytest.mark.anyio
    async def test_get_missing_is_none(self, store: TokenStore, appid: str) -> None:
        """Nothing stored: ``get`` returns ``None``."""
        assert await store.get(appid) is None

    @pytest.mark.anyio
    async def test_set_then_get_round_trips(self, store: TokenStore, appid: str) -> None:
        """A 512-character token and a fractional expiry come back as they went in."""
        token = AccessToken(_LONG, time.time() + 7000.125)
        await store.set(appid, token)
        got = await store.get(appid)
        assert got is not None, "get returned None after set"
        assert got.value == token.value, "the token value changed in the store"
        assert abs(got.expires_at - token.expires_at) < 1e-3, "expires_at changed in the store"

    @pytest.mark.anyio
    async def test_set_replaces(self, store: TokenStore, appid: str) -> None:
        """``set`` replaces whatever was stored."""
        await store.set(appid, _token("first"))
        second = _token("second")
        await store.set(appid, second)
        assert await store.get(appid) == second

    @pytest.mark.anyio
    async def test_delete_forgets_and_tolerates_missing(
        self, store: TokenStore, appid: str
    ) -> None:
        """``delete`` forgets the token; deleting nothing is not an error."""
        await store.set(appid, _token("gone"))
        await store.delete(appid)
        assert await store.get(appid) is None
        await store.delete(appid)

    @pytest.mark.anyio
    async def test_appids_are_separate(self, store: TokenStore, appid: str) -> None:
        """Each appid has its own token."""
        other = appid + "b"
        mine, theirs = _token("mine"), _token("theirs")
        await store.set(appid, mine)
        await store.set(other, theirs)
        await store.delete(other)
        assert await store.get(appid) == mine
        assert await store.get(other) is None

    @pytest.mark.anyio
    async def test_repr_never_shows_the_token(self, store: TokenStore, appid: str) -> None:
        """No token value in the store's repr."""
        token = _token("secretvalue")
        await store.set(appid, token)
        assert token.value not in repr(store)

    @pytest.mark.anyio
    async def test_manager_single_flight(
        self, store: TokenStore, appid: str, clock: VirtualClock | None, advance: Advance
    ) -> None:
        """200 concurrent cold calls through one manager: one fetch, one token."""
        fetch = CountingFetcher(delay=0.05, clock=clock)
        manager = self.manager(store, appid, fetch)
        seen = await self.run_all(advance, *[manager.get] * 200)
        assert fetch.calls == 1
        assert len(set(seen)) == 1

    @pytest.mark.anyio
    async def test_managers_share_the_stored_token(self, store: TokenStore, appid: str) -> None:
        """A second manager on the same store uses the token the first one fetched."""
        fetch = CountingFetcher()
        first = await self.manager(store, appid, fetch).get()
        second = await self.manager(store, appid, fetch).get()
        assert first == second
        assert fetch.calls == 1

    @pytest.mark.anyio
    async def test_manager_recovers_once(
        self, store: TokenStore, appid: str, clock: VirtualClock | None, advance: Advance
    ) -> None:
        """100 concurrent rejections of the same token: one more fetch, one new token."""
        fetch = CountingFetcher(delay=0.02, clock=clock)
        manager = self.manager(store, appid, fetch)
        (rejected,) = await self.run_all(advance, manager.get)

        async def recover() -> str:
            return await manager.recover(rejected)

        seen = await self.run_all(advance, *[recover] * 100)
        assert fetch.calls == 2
        assert len(set(seen)) == 1
        assert rejected not in seen

    # ------------------------------------------------------------------ LockingTokenStore

    @pytest.mark.anyio
    async def test_lock_is_exclusive(self, store: TokenStore, appid: str) -> None:
        """``try_lock`` gives a fence once, then ``None`` while it is held."""
        locking = self.locking(store)
        fence = await locking.try_lock(appid, 10)
        assert isinstance(fence, str), "try_lock on a free lock must return a fence string"
        assert fence, "the fence must not be empty"
        assert await locking.try_lock(appid, 10) is None, "a held lock was taken again"

    @pytest.mark.anyio
    async def test_only_the_owner_unlocks(self, store: TokenStore, appid: str) -> None:
        """``unlock`` with another fence does nothing; the owner's fence releases."""
        locking = self.locking(store)
        fence = await locking.try_lock(appid, 10)
        assert fence is not None
        assert await locking.unlock(appid, fence + "-not-mine") is False
        assert await locking.try_lock(appid, 10) is None, "a wrong fence released the lock"
        assert await locking.unlock(appid, fence) is True
        assert await locking.unlock(appid, fence) is False, "unlocked twice"
        assert await locking.try_lock(appid, 10) is not None

    @pytest.mark.anyio
    async def test_lock_expires_after_its_ttl(
        self, store: TokenStore, appid: str, advance: Advance
    ) -> None:
        """A holder that never unlocks (it crashed) blocks the others for ``ttl`` only."""
        locking = self.locking(store)
        stale = await locking.try_lock(appid, _SHORT_TTL)
        assert stale is not None
        assert await locking.try_lock(appid, 10) is None, "the lock was free before its ttl"
        await advance(_PAST_SHORT_TTL)
        fresh = await locking.try_lock(appid, 10)
        assert fresh is not None, "the lock outlived its ttl"
        assert fresh != stale
        assert await locking.unlock(appid, stale) is False, "an expired fence released the lock"

    @pytest.mark.anyio
    async def test_locks_are_per_appid(self, store: TokenStore, appid: str) -> None:
        """Locking one appid leaves the others free."""
        locking = self.locking(store)
        assert await locking.try_lock(appid, 10) is not None
        assert await locking.try_lock(appid + "b", 10) is not None

    @pytest.mark.anyio
    async def test_concurrent_try_lock_has_one_winner(self, store: TokenStore, appid: str) -> None:
        """50 concurrent ``try_lock``: exactly one fence."""
        locking = self.locking(store)
        fences: list[str | None] = []

        async def attempt() -> None:
            fences.append(await locking.try_lock(appid, 10))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(attempt)
        assert len([f for f in fences if f is not None]) == 1

    @pytest.mark.anyio
    async def test_compare_and_set_on_empty(self, store: TokenStore, appid: str) -> None:
        """``expected=None`` writes only where nothing is stored."""
        locking = self.locking(store)
        first, second = _token("first"), _token("second")
        assert await locking.compare_and_set(appid, first, expected=None) is True
        assert await locking.compare_and_set(appid, second, expected=None) is False
        assert await store.get(appid) == first

    @pytest.mark.anyio
    async def test_compare_and_set_checks_the_expected_value(
        self, store: TokenStore, appid: str
    ) -> None:
        """A write based on an outdated read is refused; one based on the current value wins."""
        locking = self.locking(store)
        current, stale, fresh = _token("current"), _token("stale"), _token("fresh")
        await store.set(appid, current)
        assert await locking.compare_and_set(appid, stale, expected="outdated") is False
        assert await store.get(appid) == current
        assert await locking.compare_and_set(appid, fresh, expected=current.value) is True
        assert await store.get(appid) == fresh

    @pytest.mark.anyio
    async def test_compare_and_set_honours_the_fence(self, store: TokenStore, appid: str) -> None:
        """While another fence holds the lock, a fenced write is refused; the holder's passes."""
        locking = self.locking(store)
        holder = await locking.try_lock(appid, 10)
        assert holder is not None
        token = _token("fenced")
        assert await locking.compare_and_set(appid, token, expected=None, fence="x") is False
        assert await store.get(appid) is None
        assert await locking.compare_and_set(appid, token, expected=None, fence=holder) is True
        assert await locking.unlock(appid, holder) is True
        later = _token("later")
        # The lock is free now: a fenced write whose lock expired may still land.
        assert await locking.compare_and_set(appid, later, expected=token.value, fence=holder)

    @pytest.mark.anyio
    async def test_compare_and_set_without_a_fence_ignores_the_lock(
        self, store: TokenStore, appid: str
    ) -> None:
        """An unfenced write (a token service seeding the store) lands whoever holds the lock."""
        locking = self.locking(store)
        assert await locking.try_lock(appid, 10) is not None
        token = _token("unfenced")
        assert await locking.compare_and_set(appid, token, expected=None) is True
        assert await store.get(appid) == token
        newer = _token("newer")
        assert await locking.compare_and_set(appid, newer, expected=token.value) is True
        assert await store.get(appid) == newer

    @pytest.mark.anyio
    async def test_a_refresh_that_outlived_its_lock_cannot_overwrite(
        self, store: TokenStore, appid: str, advance: Advance
    ) -> None:
        """Holder A's lock expires, B takes it and writes: A's late write is refused."""
        locking = self.locking(store)
        slow = await locking.try_lock(appid, _SHORT_TTL)
        assert slow is not None
        await advance(_PAST_SHORT_TTL)
        fast = await locking.try_lock(appid, 10)
        assert fast is not None
        slow_token, fast_token = _token("slow"), _token("fast")
        assert await locking.compare_and_set(appid, fast_token, expected=None, fence=fast)
        assert not await locking.compare_and_set(appid, slow_token, expected=None, fence=slow)
        assert await store.get(appid) == fast_token

    @pytest.mark.anyio
    async def test_concurrent_compare_and_set_has_one_winner(
        self, store: TokenStore, appid: str
    ) -> None:
        """50 concurrent writes all based on the same read: exactly one lands."""
        locking = self.locking(store)
        base = _token("base")
        await store.set(appid, base)
        winners: list[AccessToken] = []

        async def write(n: int) -> None:
            token = _token(f"w{n}")
            if await locking.compare_and_set(appid, token, expected=base.value):
                winners.append(token)

        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(write, n)
        assert len(winners) == 1
        assert await store.get(appid) == winners[0]

    @pytest.mark.anyio
    async def test_compare_and_delete(self, store: TokenStore, appid: str) -> None:
        """Only the named value is deleted; a newer token survives an old invalidation."""
        locking = self.locking(store)
        assert await locking.compare_and_delete(appid, "nothing") is False
        token = _token("live")
        await store.set(appid, token)
        assert await locking.compare_and_delete(appid, "old-value") is False
        assert await store.get(appid) == token
        assert await locking.compare_and_delete(appid, token.value) is True
        assert await store.get(appid) is None

    @pytest.mark.anyio
    async def test_many_managers_fetch_once(
        self, store: TokenStore, appid: str, clock: VirtualClock | None, advance: Advance
    ) -> None:
        """Four managers (think: four processes) × 50 concurrent cold calls: one fetch."""
        self.locking(store)
        fetch = CountingFetcher(delay=0.1, clock=clock)
        managers = [self.manager(store, appid, fetch) for _ in range(4)]
        seen = await self.run_all(advance, *[m.get for m in managers for _ in range(50)])
        assert fetch.calls == 1
        assert len(set(seen)) == 1

    @pytest.mark.anyio
    async def test_many_managers_recover_once(
        self, store: TokenStore, appid: str, clock: VirtualClock | None, advance: Advance
    ) -> None:
        """Four managers all holding a rejected token, 25 rejections each: one more fetch."""
        self.locking(store)
        fetch = CountingFetcher(delay=0.05, clock=clock)
        managers = [self.manager(store, appid, fetch) for _ in range(4)]
        rejected = set(await self.run_all(advance, *[m.get for m in managers]))
        assert len(rejected) == 1
        (bad,) = rejected
        recoveries = [
            functools.partial(manager.recover, bad) for manager in managers for _ in range(25)
        ]
        seen = await self.run_all(advance, *recoveries)
        assert fetch.calls == 2
        assert len(set(seen)) == 1
        assert bad not in seen

    # ------------------------------------------------------------------ LockExtender

    @pytest.mark.anyio
    async def test_extend_lock_keeps_it_held(
        self, store: TokenStore, appid: str, advance: Advance
    ) -> None:
        """Renewed before it expires, the lock outlives its first ``ttl``; from now, not added."""
        renewing = self.extender(store)
        locking = self.locking(store)
        fence = await locking.try_lock(appid, _HELD_TTL)
        assert fence is not None
        assert await renewing.extend_lock(appid, fence, 3 * _HELD_TTL) is True, "the renewal"
        await advance(_HELD_TTL + 0.2)  # past the first ttl
        assert await locking.try_lock(appid, 10) is None, "a renewed lock expired"
        assert await renewing.extend_lock(appid, fence, 3 * _HELD_TTL) is True, "a renewal"
        # The expiry is set to ``ttl`` from now: a shorter renewal shortens the lock.
        assert await renewing.extend_lock(appid, fence, _SHORT_TTL) is True
        await advance(_PAST_SHORT_TTL)
        assert await locking.try_lock(appid, 10) is not None, "extend_lock added to the ttl"
        assert await locking.unlock(appid, fence) is False, "the expired fence still holds it"

    @pytest.mark.anyio
    async def test_only_the_owner_extends_the_lock(
        self, store: TokenStore, appid: str, advance: Advance
    ) -> None:
        """``extend_lock`` with another fence, or on a free lock, does nothing."""
        renewing = self.extender(store)
        locking = self.locking(store)
        assert await renewing.extend_lock(appid, "nobody", 10) is False, "extended a free lock"
        assert await locking.try_lock(appid, 10) is not None, "extend_lock took a free lock"
        other = appid + "b"
        fence = await locking.try_lock(other, _SHORT_TTL)
        assert fence is not None
        assert await renewing.extend_lock(other, fence + "-not-mine", 10) is False
        await advance(_PAST_SHORT_TTL)
        assert await locking.try_lock(other, 10) is not None, "a wrong fence extended the lock"

    @pytest.mark.anyio
    async def test_extend_lock_does_not_revive_an_expired_lock(
        self, store: TokenStore, appid: str, advance: Advance
    ) -> None:
        """Once the lock expired (and maybe changed hands), its old fence cannot extend it."""
        renewing = self.extender(store)
        locking = self.locking(store)
        stale = await locking.try_lock(appid, _SHORT_TTL)
        assert stale is not None
        await advance(_PAST_SHORT_TTL)
        assert await renewing.extend_lock(appid, stale, 10) is False, "an expired lock revived"
        fresh = await locking.try_lock(appid, 10)
        assert fresh is not None
        assert await renewing.extend_lock(appid, stale, 10) is False, "extended another's lock"
        assert await locking.unlock(appid, fresh) is True

    @pytest.mark.anyio
    async def test_a_fetch_slower_than_the_lock_ttl_keeps_the_lock(
        self, store: TokenStore, appid: str, clock: VirtualClock | None, advance: Advance
    ) -> None:
        """Lock TTL 1.2 s, fetch 1.6 s: the holder renews its lock, the other manager waits.

        The holder renews every 0.4 s: on real time its lock survives a stall of 0.8 s.
        """
        self.extender(store)
        ttl = 1.2
        fetch = CountingFetcher(delay=ttl + 0.4, clock=clock)
        first, second = (self.manager(store, appid, fetch, lock_ttl=ttl) for _ in range(2))

        async def later() -> str:
            await (anyio.sleep if clock is None else clock.sleep)(ttl / 4)  # the first fetches
            return await second.get()

        seen = await self.run_all(advance, first.get, later)
        assert fetch.calls == 1, "the lock expired during the fetch and a second manager fetched"
        assert len(set(seen)) == 1

    # ------------------------------------------------------------------ ForceRefreshLedger

    @pytest.mark.anyio
    async def test_force_refresh_interval(self, store: TokenStore, appid: str) -> None:
        """A claim less than ``min_interval`` after the last one is refused and not recorded."""
        ledger = self.ledger(store)
        now = time.time()
        kw: dict[str, Any] = {"per_day": 20, "min_interval": 30.0}
        assert await ledger.claim_force_refresh(appid, now=now, **kw) == ForceRefreshClaim.GRANTED
        too_soon = await ledger.claim_force_refresh(appid, now=now + 29, **kw)
        assert too_soon == ForceRefreshClaim.TOO_SOON
        later = await ledger.claim_force_refresh(appid, now=now + 30, **kw)
        assert later == ForceRefreshClaim.GRANTED

    @pytest.mark.anyio
    async def test_force_refresh_daily_limit(self, store: TokenStore, appid: str) -> None:
        """At most ``per_day`` claims in any 24 hours (a claim exactly 24 h old still counts)."""
        ledger = self.ledger(store)
        now = float(int(time.time()))
        kw: dict[str, Any] = {"per_day": 3, "min_interval": 0.0}
        claims = [await ledger.claim_force_refresh(appid, now=now + i, **kw) for i in range(4)]
        assert claims == [ForceRefreshClaim.GRANTED] * 3 + [ForceRefreshClaim.DAILY_LIMIT]
        other = await ledger.claim_force_refresh(appid + "b", now=now, **kw)
        assert other == ForceRefreshClaim.GRANTED
        day_later = await ledger.claim_force_refresh(appid, now=now + 86400, **kw)
        assert day_later == ForceRefreshClaim.DAILY_LIMIT, "a claim 24 h old no longer counted"
        next_day = await ledger.claim_force_refresh(appid, now=now + 86400.5, **kw)
        assert next_day == ForceRefreshClaim.GRANTED
        # The first claim left the window; the two others, and this one, are inside it.
        full = await ledger.claim_force_refresh(appid, now=now + 86400.75, **kw)
        assert full == ForceRefreshClaim.DAILY_LIMIT
