"""Access tokens: the value type, the pluggable stores, and the manager that keeps one fresh.

The store contract comes in three layers; write only what your backend needs.

:class:`TokenStore` (required): three async methods keyed by appid; the token and its expiry are
stored together as one :class:`AccessToken`.

* ``get(appid)`` returns the stored token or ``None``. It may return an expired token: the manager
  checks ``expires_at`` itself.
* ``set(appid, token)`` stores the token, replacing any other.
* ``delete(appid)`` forgets the token (a missing one is not an error).

With only these, the manager coordinates refreshes inside one process (an in-process lock).

:class:`LockingTokenStore` (optional) adds what it takes to coordinate many processes or hosts.
Each method must be atomic in the backend:

* ``try_lock(appid, ttl)`` takes the refresh lock of ``appid`` if it is free and returns a
  *fence* (a string unique to this holder), or ``None`` at once if someone holds it. The lock
  frees itself after ``ttl`` seconds, so a holder that crashed cannot block the others forever.
* ``unlock(appid, fence)`` releases the lock only if ``fence`` still holds it.
* ``compare_and_set(appid, token, expected=..., fence=...)`` stores ``token`` only if the stored
  token's value is ``expected`` (``None``: nothing is stored) and, when ``fence`` is given, the
  lock is not held by anyone else. A refresh that outlived its lock therefore never overwrites the
  fresher token of whoever took the lock next.
* ``compare_and_delete(appid, value)`` deletes the stored token only if its value is ``value``.

:class:`LockExtender` (optional, recommended): ``extend_lock(appid, fence, ttl)`` resets the
lock's expiry to ``ttl`` seconds from now if ``fence`` still holds it (atomically) and says whether
it did. The manager renews its lock with it every ``ttl / 3`` while it fetches, so a fetch slower
than the lock TTL (WeChat retried with backoff) does not let a second process fetch too.

:class:`ForceRefreshLedger` (optional) shares the ``force_refresh`` budget of the stable token
endpoint (WeChat allows 20 a day, 30 s apart, per appid) between processes; without it each
manager keeps that count in memory.

:class:`TokenManager` drives the store. It is single-flight (one fetch for any number of
concurrent callers; with a locking store, one fetch for any number of processes), refreshes
ahead of expiry (when that refresh fails, the current token is used while it stays valid for
more than ``TOKEN_FALLBACK_MIN_VALIDITY`` seconds), and invalidates compare-and-delete style: a
caller that saw token ``T`` rejected only refreshes if the store still holds ``T``. Callers that
find another process refreshing poll the store for the new token (bounded by ``lock_timeout``)
instead of fetching.
Without a fetcher (``fetch=None``) the manager is read-only: it never calls WeChat, only reads
the store, and raises :class:`TokenUnavailableError` when the store holds nothing usable.

``wechat_kf.testing.store_contract`` is a test suite any store implementation can run.
"""

from __future__ import annotations

import collections
import enum
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, runtime_checkable

import anyio
import attrs

from wechat_kf import _defaults
from wechat_kf._errors import (
    ClientUsageError,
    ConfigurationError,
    ForceRefreshLimitedError,
    MalformedResponseError,
    TokenError,
    TokenFetchError,
    TokenRefreshTimeoutError,
    TokenStoreError,
    TokenUnavailableError,
    WeChatError,
)
from wechat_kf._redaction import get_logger
from wechat_kf._stores import Clock

__all__ = [
    "AccessToken",
    "ForceRefreshClaim",
    "ForceRefreshLedger",
    "LockExtender",
    "LockingTokenStore",
    "MemoryTokenStore",
    "TokenEndpoint",
    "TokenManager",
    "TokenStore",
    "TokenStoreError",
    "new_fence",
]

logger: Final = get_logger("wechat_kf.tokens")

#: Failures of a refresh ahead of expiry that the still-valid current token rides out: the store
#: (Redis) or the token endpoint is briefly unavailable (every failure of the token endpoint is a
#: TokenFetchError). Configuration errors (wrong appid, secret, IP) and anything else still raise.
_TRANSIENT_REFRESH_ERRORS: Final = (TokenError,)
#: Errors of the token endpoint that are raised as they are, not as a TokenFetchError: a wrong
#: appid, secret or IP (only the configuration can fix it), and a client used wrongly.
_UNWRAPPED_FETCH_ERRORS: Final = (ConfigurationError, ClientUsageError)
#: An access token as it can travel in a query string: printable ASCII without space, ``#``,
#: ``%``, ``&`` or ``+`` (WeChat's are letters, digits, ``_`` and ``-``).
_TOKEN_VALUE: Final = re.compile(
    rf"[\x21\x22\x24\x27-\x2a\x2c-\x7e]{{1,{_defaults.TOKEN_MAX_LENGTH}}}"
)
_DIGITS: Final = re.compile(r"\s*[0-9]{1,12}\s*")


@attrs.frozen
class AccessToken:
    """An access token and the unix time (seconds, wall clock) at which it expires."""

    value: str = attrs.field(repr=lambda _: "'***'")
    expires_at: float

    def remaining(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)

    def is_fresh(self, margin: float, now: float | None = None) -> bool:
        """Whether the token stays valid for more than ``margin`` seconds."""
        return self.remaining(now) > margin


@runtime_checkable
class TokenStore(Protocol):
    """Where access tokens live, keyed by appid. See the module docstring for the contract."""

    async def get(self, appid: str) -> AccessToken | None:
        """Return the stored token for ``appid`` (possibly expired), or ``None``."""
        ...

    async def set(self, appid: str, token: AccessToken) -> None:
        """Store ``token`` for ``appid``, replacing any previous one."""
        ...

    async def delete(self, appid: str) -> None:
        """Forget the token for ``appid``; no error if there is none."""
        ...


@runtime_checkable
class LockingTokenStore(TokenStore, Protocol):
    """A :class:`TokenStore` shared by many processes: a refresh lock and atomic writes.

    Every method must be atomic in the backend. See the module docstring for the contract and
    ``wechat_kf.testing.store_contract`` for the tests that check it.
    """

    async def try_lock(self, appid: str, ttl: float) -> str | None:
        """Take the refresh lock for ``ttl`` seconds: a fence unique to this holder, or ``None``.

        Never waits: ``None`` means someone else holds the lock now.
        """
        ...

    async def unlock(self, appid: str, fence: str) -> bool:
        """Release the lock if ``fence`` still holds it; whether it did."""
        ...

    async def compare_and_set(
        self, appid: str, token: AccessToken, *, expected: str | None, fence: str | None = None
    ) -> bool:
        """Store ``token`` if the stored value is ``expected`` and no other fence holds the lock.

        ``expected=None`` means "only if nothing is stored". Returns whether it stored.
        """
        ...

    async def compare_and_delete(self, appid: str, value: str) -> bool:
        """Delete the stored token if its value is ``value``; whether it did."""
        ...


@runtime_checkable
class LockExtender(Protocol):
    """A :class:`LockingTokenStore` whose refresh lock its holder can renew (optional).

    Without it a fetch slower than the lock TTL lets a second process take the lock and fetch
    too; the compare-and-set still keeps one token in the store.
    """

    async def extend_lock(self, appid: str, fence: str, ttl: float) -> bool:
        """If ``fence`` still holds the lock, make it expire ``ttl`` s from now; whether it did.

        Atomic in the backend. An expired lock, or one another fence holds, is left alone.
        """
        ...


class ForceRefreshClaim(str, enum.Enum):
    """The answer of :meth:`ForceRefreshLedger.claim_force_refresh`."""

    #: Recorded: go ahead and call ``force_refresh``.
    GRANTED = "granted"
    #: ``per_day`` claims were made in the last 24 h.
    DAILY_LIMIT = "daily_limit"
    #: The last claim is less than ``min_interval`` seconds old.
    TOO_SOON = "too_soon"


@runtime_checkable
class ForceRefreshLedger(Protocol):
    """A store that counts ``force_refresh`` calls for every process sharing it (optional)."""

    async def claim_force_refresh(
        self, appid: str, *, now: float, per_day: int, min_interval: float
    ) -> ForceRefreshClaim:
        """Atomically check the limits at ``now`` and, if they allow it, record one claim."""
        ...


def new_fence() -> str:
    """A lock fence: unique, and naming its holder (host and pid) for whoever inspects it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def claim_in(
    history: collections.deque[float], *, now: float, per_day: int, min_interval: float
) -> ForceRefreshClaim:
    """Check and record a force-refresh claim in ``history`` (timestamps, oldest first)."""
    day_ago = now - 86400
    while history and history[0] < day_ago:
        history.popleft()
    if len(history) >= per_day:
        return ForceRefreshClaim.DAILY_LIMIT
    if history and now - history[-1] < min_interval:
        return ForceRefreshClaim.TOO_SOON
    history.append(now)
    return ForceRefreshClaim.GRANTED


class MemoryTokenStore:
    """The default store: dicts in this process. Share one instance between clients.

    It implements the whole contract (locks and their renewal, compare-and-set, the
    force-refresh ledger), so
    several clients or managers in one process sharing it coordinate like processes sharing a
    :class:`~wechat_kf.RedisTokenStore`. Thread-safe. Lock TTLs run on ``clock`` (seconds,
    ``time.monotonic``), which tests replace.
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._forced: dict[str, collections.deque[float]] = {}
        self._mutex = threading.Lock()
        self._clock = clock

    async def get(self, appid: str) -> AccessToken | None:
        """Return the stored token for ``appid`` or ``None``."""
        return self._tokens.get(appid)

    async def set(self, appid: str, token: AccessToken) -> None:
        """Store ``token`` for ``appid``."""
        with self._mutex:
            self._tokens[appid] = token

    async def delete(self, appid: str) -> None:
        """Forget the token for ``appid``."""
        with self._mutex:
            self._tokens.pop(appid, None)

    def _holder(self, appid: str) -> str | None:
        held = self._locks.get(appid)
        if held is None:
            return None
        if held[1] <= self._clock():
            del self._locks[appid]
            return None
        return held[0]

    async def try_lock(self, appid: str, ttl: float) -> str | None:
        """Take the refresh lock for ``ttl`` seconds; a fence, or ``None`` if it is held."""
        with self._mutex:
            if self._holder(appid) is not None:
                return None
            fence = new_fence()
            self._locks[appid] = (fence, self._clock() + ttl)
            return fence

    async def unlock(self, appid: str, fence: str) -> bool:
        """Release the lock if ``fence`` holds it."""
        with self._mutex:
            if self._holder(appid) != fence:
                return False
            del self._locks[appid]
            return True

    async def extend_lock(self, appid: str, fence: str, ttl: float) -> bool:
        """Make the lock expire ``ttl`` seconds from now if ``fence`` still holds it."""
        with self._mutex:
            if self._holder(appid) != fence:
                return False
            self._locks[appid] = (fence, self._clock() + ttl)
            return True

    async def compare_and_set(
        self, appid: str, token: AccessToken, *, expected: str | None, fence: str | None = None
    ) -> bool:
        """Store ``token`` if the stored value is ``expected`` and no other fence holds the lock."""
        with self._mutex:
            if fence is not None and self._holder(appid) not in (None, fence):
                return False
            current = self._tokens.get(appid)
            if (None if current is None else current.value) != expected:
                return False
            self._tokens[appid] = token
            return True

    async def compare_and_delete(self, appid: str, value: str) -> bool:
        """Delete the stored token if its value is ``value``."""
        with self._mutex:
            current = self._tokens.get(appid)
            if current is None or current.value != value:
                return False
            del self._tokens[appid]
            return True

    async def claim_force_refresh(
        self, appid: str, *, now: float, per_day: int, min_interval: float
    ) -> ForceRefreshClaim:
        """Check the force-refresh limits and record a claim if they allow it."""
        with self._mutex:
            history = self._forced.setdefault(appid, collections.deque())
            return claim_in(history, now=now, per_day=per_day, min_interval=min_interval)

    def __repr__(self) -> str:
        return f"MemoryTokenStore(appids={sorted(self._tokens)!r})"


class TokenEndpoint(str, enum.Enum):
    """Which WeChat endpoint issues tokens.

    ``STABLE`` (``POST /cgi-bin/stable_token``, the default) hands the same token to every caller
    while it is valid, so separate processes stop invalidating each other. ``CLASSIC``
    (``GET /cgi-bin/token``) issues a new token on every fetch and invalidates the previous one
    after about five minutes.
    """

    STABLE = "stable"
    CLASSIC = "classic"


#: Fetches a token from WeChat: ``fetch(force_refresh)``.
Fetcher = Callable[[bool], Awaitable[AccessToken]]


def token_from_payload(payload: dict[str, Any], now: float) -> AccessToken:
    """Build an :class:`AccessToken` from a token endpoint's decoded answer.

    Only a usable token is built: its value must be able to travel in a URL (printable ASCII,
    at most ``TOKEN_MAX_LENGTH`` characters) and its lifetime must be a whole number of seconds
    in ``1..TOKEN_MAX_LIFETIME`` (a digit string or an integral float is read as one). Anything
    else is a :class:`MalformedResponseError` that names the rule, never the value.
    """
    value = payload.get("access_token")
    if not isinstance(value, str) or not value:
        raise MalformedResponseError("token response has no access_token string")
    if not _TOKEN_VALUE.fullmatch(value):
        raise MalformedResponseError(
            f"token response: access_token is not usable in a URL (printable ASCII without "
            f"space, '#', '%', '&' or '+', at most {_defaults.TOKEN_MAX_LENGTH} characters; "
            f"got {len(value)} characters)"
        )
    return AccessToken(value, now + _lifetime(payload.get("expires_in")))


def _lifetime(expires_in: object) -> int:
    if isinstance(expires_in, str) and _DIGITS.fullmatch(expires_in):
        expires_in = int(expires_in)  # WeChat's docs show a number; a digit string is read too
    elif isinstance(expires_in, float) and expires_in.is_integer():
        expires_in = int(expires_in)
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not 0 < expires_in <= _defaults.TOKEN_MAX_LIFETIME
    ):
        raise MalformedResponseError(
            f"token response has no expires_in in 1..{_defaults.TOKEN_MAX_LIFETIME} seconds"
        )
    return expires_in


class TokenManager:
    """Keeps one fresh access token for an appid, shared by every request of a client.

    * ``get()`` returns the cached token without locking while it is fresh; otherwise one caller
      fetches (single flight) while the others wait, at most ``lock_timeout`` seconds. With a
      :class:`LockingTokenStore` this holds across processes: one process takes the store's
      lock (for ``lock_ttl`` seconds, renewed while it fetches when the store is a
      :class:`LockExtender`) and fetches, the others poll the store.
    * Refreshing ahead of expiry never fails a call that a still-valid token can serve: while
      the current token has more than ``TOKEN_FALLBACK_MIN_VALIDITY`` seconds left, callers do
      not wait for a refresh someone else is running, and a refresh that fails with a store,
      transport or busy error logs a warning, returns the current token and is retried
      ``TOKEN_REFRESH_BACKOFF`` seconds later. Configuration errors always raise.
    * ``recover(rejected)`` is called when WeChat rejected a token (40001/40014/42001): it
      refreshes only if the store still holds the rejected token, so N concurrent rejections
      (in any number of processes) cause one fetch. When the stable endpoint hands back the very
      token that failed, it asks once for ``force_refresh``, within WeChat's limits (20 a day,
      30 s apart; counted in the store when it is a :class:`ForceRefreshLedger`).
    * ``fetch=None`` makes it read-only: tokens come only from the store.
    * ``clock`` (wall-clock seconds, ``time.time``) is what token expiry and the wait for
      another process are measured on, ``sleep`` (``anyio.sleep``) how it waits on that
      clock (polling the store, renewing its lock). Tests pass a
      :class:`wechat_kf.testing.VirtualClock` for both.
    """

    def __init__(
        self,
        *,
        appid: str,
        store: TokenStore,
        fetch: Fetcher | None,
        endpoint: TokenEndpoint = TokenEndpoint.STABLE,
        refresh_margin: float = _defaults.TOKEN_REFRESH_MARGIN,
        lock_timeout: float = _defaults.TOKEN_LOCK_TIMEOUT,
        lock_ttl: float = _defaults.TOKEN_LOCK_TTL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.appid = appid
        self.store = store
        self.endpoint = endpoint
        self.refresh_margin = refresh_margin
        self.lock_timeout = lock_timeout
        self.lock_ttl = lock_ttl
        self._fetch = fetch
        self._clock = clock
        self._sleep = sleep
        self._cached: AccessToken | None = None
        self._lock: anyio.Lock | None = None
        self._forced: collections.deque[float] = collections.deque()
        #: A refresh ahead of expiry holds the in-process lock (callers with a valid token go on).
        self._refreshing_ahead = False  # pragma: no mutate (every refresh sets it before a read)
        #: No refresh ahead of expiry before this time (``clock``): the last one failed.
        self._retry_at = 0.0  # pragma: no mutate (1.0 is as long ago on a Unix clock)
        #: The best still-valid token seen during the current refresh (the cached or the stored).
        self._spare: AccessToken | None = None
        #: A token this refresh fetched but could not store while others changed the store: used
        #: for the call that fetched it, never cached (the next call reads the store again).
        self._orphan: AccessToken | None = None  # pragma: no mutate (compared by identity only)
        #: The last failure of the token endpoint while it is remembered: until its
        #: ``next_attempt_at`` callers get it again at once instead of calling the endpoint.
        self._failure: TokenFetchError | None = None
        #: A force refresh refused for a rejected token: ``(token, error)``. Until the error's
        #: ``next_attempt_at``, seeing that token rejected again raises at once (no request).
        self._force_refused: tuple[str, ForceRefreshLimitedError] | None = None
        #: How many times this manager called the token endpoint (for tests and metrics).
        self.fetch_count: int = 0

    def __repr__(self) -> str:
        mode = "read-only" if self._fetch is None else self.endpoint.value
        return f"TokenManager(appid={self.appid!r}, endpoint={mode!r})"

    @property
    def read_only(self) -> bool:
        """Whether tokens come only from the store (the SDK never calls the token endpoint)."""
        return self._fetch is None

    async def get(self) -> str:
        """Return a token valid for longer than the refresh margin, fetching if needed.

        Inside the margin, a token that is still valid is returned without waiting while
        another task refreshes it, or while a failed refresh backs off.
        """
        cached = self._cached
        if cached is not None:
            now = self._clock()
            if cached.expires_at - now > self.refresh_margin:
                return cached.value
            if self._still_valid(cached) and (self._refreshing_ahead or now < self._retry_at):
                return cached.value
        return (await self._refresh(rejected=None)).value

    async def recover(self, rejected: str) -> str:
        """WeChat rejected ``rejected``: return another fresh token (compare-and-invalidate)."""
        return (await self._refresh(rejected=rejected)).value

    async def invalidate(self) -> None:
        """Forget the current token here and in the store; the next call fetches a new one.

        Remembered failures (a failed fetch, a refused force refresh) are forgotten too. Read-only
        managers only forget their in-memory copy: they never write the store.
        """
        self._cached = None
        self._retry_at = 0.0  # pragma: no mutate (1.0 is as long ago on a Unix clock)
        self._failure = self._force_refused = None
        if self._fetch is not None:
            await self.store.delete(self.appid)

    # ------------------------------------------------------------------ internals

    def _refresh_lock(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    def _usable(self, token: AccessToken | None, rejected: str | None) -> bool:
        return (
            token is not None
            and token.value != rejected
            and token.is_fresh(self.refresh_margin, self._clock())
        )

    def _still_valid(self, token: AccessToken) -> bool:
        """Whether ``token`` may still be handed out when a refresh ahead of expiry fails."""
        return token.is_fresh(_defaults.TOKEN_FALLBACK_MIN_VALIDITY, self._clock())

    def _offer_spare(self, token: AccessToken | None) -> None:
        """Remember ``token`` as the fallback of a refresh ahead of expiry, if it is better.

        Only a refresh ahead of expiry has a spare (a rejected token is never one). The cached
        token is offered first, then the store's: on a tie the store's wins, the token every
        other process uses.
        """
        if not self._refreshing_ahead or token is None or not self._still_valid(token):
            return
        if self._spare is None or token.expires_at >= self._spare.expires_at:
            self._spare = token

    def _fall_back(self, error: BaseException | None) -> AccessToken | None:
        """The spare token, if the refresh ahead of expiry may end with it; backs off retries."""
        spare = self._spare
        if spare is None or not self._still_valid(spare):
            return None
        now = self._clock()
        if error is not None:
            self._retry_at = now + _defaults.TOKEN_REFRESH_BACKOFF
            logger.warning(
                "access token refresh for %s failed (%s: %s); using the current token "
                "(valid %.0f s more), next attempt in %g s",
                self.appid,
                type(error).__name__,
                error,
                spare.remaining(now),
                _defaults.TOKEN_REFRESH_BACKOFF,
            )
        self._cached = spare
        return spare

    def _next_refresh_after(self, token: AccessToken) -> float:
        """When to refresh again ahead of expiry (0: as usual, once inside the margin).

        WeChat may hand back a token that is already inside the refresh margin (a margin
        longer than its rotation lead, or a short ``expires_in``); refreshing it on every call
        would spend a token request per API call. Such a token is used for a quarter of its
        remaining validity (at least the back-off) before the next attempt.
        """
        now = self._clock()
        remaining = token.remaining(now)
        if remaining > self.refresh_margin:
            return 0.0  # pragma: no mutate (1.0 is as long ago on a Unix clock)
        spare = remaining - _defaults.TOKEN_FALLBACK_MIN_VALIDITY
        return now + max(_defaults.TOKEN_REFRESH_BACKOFF, spare / 4)

    def _timeout_error(self, detail: str = "") -> TokenRefreshTimeoutError:
        return TokenRefreshTimeoutError(
            f"waited {self.lock_timeout:g} s for the access token refresh of {self.appid}{detail}"
        )

    async def _refresh(self, *, rejected: str | None) -> AccessToken:
        deadline = self._clock() + self.lock_timeout
        lock = self._refresh_lock()
        try:
            with anyio.fail_after(self.lock_timeout):
                await lock.acquire()
        except TimeoutError:
            cached = self._cached
            if rejected is None and cached is not None and self._still_valid(cached):
                return cached  # someone else's refresh is slow, but this token still works
            raise self._timeout_error() from None
        ahead = rejected is None
        self._refreshing_ahead = ahead
        try:  # _spare and _orphan are None here: every refresh leaves them so
            # Another task of this process may have refreshed while we waited for the lock.
            cached = self._cached
            if cached is not None and self._usable(cached, rejected):
                return cached
            self._offer_spare(cached)
            if self._clock() < self._retry_at:
                # The last refresh ahead of expiry failed moments ago: do not hit it again yet
                # (a recovery has no spare: it goes on).
                spare = self._fall_back(None)
                if spare is not None:
                    return spare
            try:
                if self._fetch is None:
                    token = await self._read_only(rejected)
                elif isinstance(self.store, LockingTokenStore):
                    token = await self._refresh_shared(self.store, self._fetch, rejected, deadline)
                else:
                    token = await self._refresh_local(self._fetch, rejected)
            except _TRANSIENT_REFRESH_ERRORS as exc:
                spare = self._fall_back(exc)  # None when recovering: no spare
                if spare is None:
                    raise
                return spare
            if token is not self._orphan:
                self._cached = token
            self._retry_at = self._next_refresh_after(token)
            return token
        finally:
            self._refreshing_ahead = False  # pragma: no mutate (None is as false)
            self._spare = self._orphan = None
            lock.release()

    async def _refresh_local(self, fetch: Fetcher, rejected: str | None) -> AccessToken:
        """A plain store: the in-process lock is all the coordination there is."""
        stored = await self.store.get(self.appid)
        if stored is not None and self._usable(stored, rejected):
            return stored
        self._offer_spare(stored)
        self._check_remembered(rejected)
        token = await self._fetch_counted(fetch, force=False)
        if rejected is not None and token.value == rejected:
            token = await self._force_refresh(fetch, rejected)
        await self.store.set(self.appid, token)
        return token

    async def _refresh_shared(
        self, store: LockingTokenStore, fetch: Fetcher, rejected: str | None, deadline: float
    ) -> AccessToken:
        """A shared store: one process fetches under the store's lock, the others poll."""
        delay = _defaults.TOKEN_POLL_INITIAL
        while True:
            fence = await store.try_lock(self.appid, self.lock_ttl)
            if fence is not None:
                return await self._fetch_as_holder(store, fetch, fence, rejected)
            # Another process is refreshing: wait for its token instead of fetching our own.
            stored = await store.get(self.appid)
            if stored is not None and self._usable(stored, rejected):
                return stored
            self._offer_spare(stored)
            # Refreshing ahead of expiry and the token we have still works: no need to wait
            # for the other process. When to look again is _refresh's to say (a quarter of the
            # spare's remaining validity, at least the back-off).
            spare = self._fall_back(None)
            if spare is not None:
                return spare
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise self._timeout_error(" (another process holds the refresh lock)")
            await self._sleep(min(delay * random.uniform(0.75, 1.0), remaining))
            delay = min(delay * 2, _defaults.TOKEN_POLL_MAX)

    async def _fetch_as_holder(
        self, store: LockingTokenStore, fetch: Fetcher, fence: str, rejected: str | None
    ) -> AccessToken:
        try:
            if not isinstance(store, LockExtender):
                return await self._holder_refresh(store, fetch, fence, rejected)
            # Renew the lock while we work, so a slow fetch does not let another process fetch
            # too. The work runs outside the task group's error handling: its exceptions come
            # out as they are, not wrapped in an exception group.
            outcome: AccessToken | Exception | None = None  # pragma: no mutate (set before read)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._keep_lock, store, fence)
                try:
                    outcome = await self._holder_refresh(store, fetch, fence, rejected)
                except Exception as exc:
                    outcome = exc
                finally:
                    tg.cancel_scope.cancel()
            if isinstance(outcome, Exception):
                raise outcome
            assert outcome is not None
            return outcome
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await store.unlock(self.appid, fence)
                except TokenStoreError as exc:  # the lock expires on its own
                    logger.warning("refresh lock for %s not released: %s", self.appid, exc)

    async def _keep_lock(self, store: LockExtender, fence: str) -> None:
        """Renew the refresh lock every third of its TTL until cancelled or lost."""
        interval = self.lock_ttl / 3
        while True:
            await self._sleep(interval)
            try:
                held = await store.extend_lock(self.appid, fence, self.lock_ttl)
            except Exception as exc:  # a blip: the lock may survive until the next attempt
                logger.warning("refresh lock for %s not renewed: %s", self.appid, exc)
                continue
            if not held:
                logger.warning(
                    "refresh lock for %s expired during the refresh; another process may fetch",
                    self.appid,
                )
                return

    async def _holder_refresh(
        self, store: LockingTokenStore, fetch: Fetcher, fence: str, rejected: str | None
    ) -> AccessToken:
        # Double-check under the shared lock: another process may have just refreshed.
        current = await store.get(self.appid)
        if current is not None and self._usable(current, rejected):
            return current
        self._offer_spare(current)
        if current is not None and current.value == rejected:
            # Compare-and-delete: the token is dead for every process, even if our fetch
            # fails; a newer token someone else stored meanwhile is left alone.
            if await store.compare_and_delete(self.appid, rejected):
                current = None
            else:
                current = await store.get(self.appid)
                if current is not None and self._usable(current, rejected):
                    return current
        self._check_remembered(rejected)
        token = await self._fetch_counted(fetch, force=False)
        if rejected is not None and token.value == rejected:
            token = await self._force_refresh(fetch, rejected)
        expected = None if current is None else current.value
        try:
            for _ in range(2):
                if await store.compare_and_set(self.appid, token, expected=expected, fence=fence):
                    return token
                # Someone wrote (or deleted) meanwhile. The store's token is the one every other
                # process uses: adopt it rather than keep a token no one else knows, which the
                # classic endpoint may have invalidated already.
                stored = await store.get(self.appid)
                if stored is not None and stored.value != rejected and self._still_valid(stored):
                    logger.info(
                        "access token for %s changed in the store during the refresh: "
                        "using the stored one",
                        self.appid,
                    )
                    return stored
                # Nothing usable is stored: try once more to store ours.
                expected = None if stored is None else stored.value
            # Another holder is about to store its token: use ours for this call only.
            logger.warning(
                "access token for %s not stored: the store keeps changing during the refresh",
                self.appid,
            )
            self._orphan = token
        except TokenStoreError as exc:
            # The token is good; keep it in this process and let the next refresh retry.
            logger.warning("access token for %s not stored: %s", self.appid, exc)
        return token

    async def _read_only(self, rejected: str | None) -> AccessToken:
        stored = await self.store.get(self.appid)
        now = self._clock()
        where = (
            "read-only token mode: the SDK never calls WeChat's token endpoint; "
            "check that your token service writes to this store"
        )
        if stored is None:
            raise TokenUnavailableError(
                f"the token store holds no access token for {self.appid} ({where})"
            )
        if stored.value == rejected:
            raise TokenUnavailableError(
                f"WeChat rejected the stored access token for {self.appid} and the store holds "
                f"no other ({where})"
            )
        if stored.remaining(now) <= 0:
            raise TokenUnavailableError(
                f"the stored access token for {self.appid} expired "
                f"{now - stored.expires_at:.0f} s ago ({where})"
            )
        return stored

    def _check_remembered(self, rejected: str | None) -> None:
        """Raise again, without a request, a failure that is still remembered.

        Called right before a fetch, after the store was read: a token another process
        stored meanwhile is used, whatever this process remembers.
        """
        now = self._clock()
        refused = self._force_refused
        if refused is not None and refused[0] == rejected:
            until = refused[1].next_attempt_at
            if until is not None and now < until:
                raise ForceRefreshLimitedError(
                    f"{refused[1]} (remembered: next force_refresh in {until - now:.0f} s)",
                    next_attempt_at=until,
                )
        failure = self._failure
        until = None if failure is None else failure.next_attempt_at
        if failure is not None and until is not None and now < until:
            again = TokenFetchError(
                f"{failure} (remembered: next attempt in {until - now:.1f} s)",
                next_attempt_at=until,
            )
            again.__cause__ = failure.__cause__
            raise again

    async def _fetch_counted(self, fetch: Fetcher, *, force: bool) -> AccessToken:
        self.fetch_count += 1
        logger.debug("fetching access token for %s (force_refresh=%s)", self.appid, force)
        try:
            token = await fetch(force)
        except _UNWRAPPED_FETCH_ERRORS:
            raise
        except WeChatError as exc:
            next_attempt_at = self._clock() + _defaults.TOKEN_REFRESH_BACKOFF
            failure = TokenFetchError(
                f"could not get an access token for {self.appid} "
                f"({type(exc).__name__}: {exc}); nothing was sent; the SDK asks the token "
                f"endpoint again in {_defaults.TOKEN_REFRESH_BACKOFF:g} s",
                next_attempt_at=next_attempt_at,
            )
            self._failure = failure
            raise failure from exc
        self._failure = None
        return token

    async def _force_refresh(self, fetch: Fetcher, rejected: str) -> AccessToken:
        if self.endpoint is not TokenEndpoint.STABLE:
            # The classic endpoint always issues a new token; an equal one is WeChat's problem.
            raise self._refused(rejected, "the token endpoint returned the rejected token again")
        now = self._clock()
        per_day = _defaults.FORCE_REFRESH_PER_DAY
        interval = _defaults.FORCE_REFRESH_MIN_INTERVAL
        if isinstance(self.store, ForceRefreshLedger):
            claim = await self.store.claim_force_refresh(
                self.appid, now=now, per_day=per_day, min_interval=interval
            )
        else:
            claim = claim_in(self._forced, now=now, per_day=per_day, min_interval=interval)
        claim = ForceRefreshClaim(claim)
        if claim is ForceRefreshClaim.DAILY_LIMIT:
            raise self._refused(
                rejected,
                f"stable_token keeps returning a rejected token and force_refresh was used "
                f"{per_day} times in 24 h (WeChat's daily limit)",
            )
        if claim is ForceRefreshClaim.TOO_SOON:
            raise self._refused(
                rejected,
                f"stable_token returned a rejected token and the last force_refresh was less "
                f"than {interval:g} s ago (WeChat's minimum interval)",
            )
        logger.warning("access token for %s rejected though current: force_refresh", self.appid)
        token = await self._fetch_counted(fetch, force=True)
        if token.value == rejected:
            raise self._refused(rejected, "force_refresh returned the rejected token again")
        return token

    def _refused(self, rejected: str, reason: str) -> ForceRefreshLimitedError:
        """The error for a force refresh refused for ``rejected``, remembered for that token.

        The SDK tries again (one token request) after ``FORCE_REFRESH_MIN_INTERVAL`` seconds;
        until then every rejection of that token fails at once with this error.
        """
        wait = _defaults.FORCE_REFRESH_MIN_INTERVAL
        error = ForceRefreshLimitedError(
            f"WeChat rejected the access token of {self.appid} and {reason}; nothing was sent; "
            f"the SDK tries a force_refresh again in {wait:g} s",
            next_attempt_at=self._clock() + wait,
        )
        self._force_refused = (rejected, error)
        return error
