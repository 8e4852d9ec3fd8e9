"""Access tokens: the value type, the pluggable store, and the manager that keeps one fresh.

The store contract (:class:`TokenStore`) is three async methods keyed by appid; the token and its
expiry are stored together as one :class:`AccessToken`. Write your own store for any shared
backend; the manager only ever calls these three methods:

* ``get(appid)`` returns the stored token or ``None``. It may return an expired token: the manager
  checks ``expires_at`` itself.
* ``set(appid, token)`` stores the token, replacing any other.
* ``delete(appid)`` forgets the token (a missing one is not an error).

The :class:`TokenManager` is single-flight (one fetch for any number of concurrent callers),
refreshes ahead of expiry, and invalidates compare-and-delete style: a caller that saw token ``T``
rejected only refreshes if the store still holds ``T``.
"""

from __future__ import annotations

import collections
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import anyio
import attrs

from wechat_kf import _defaults
from wechat_kf._errors import (
    ForceRefreshLimitedError,
    MalformedResponseError,
    TokenRefreshTimeoutError,
)

__all__ = [
    "AccessToken",
    "MemoryTokenStore",
    "TokenEndpoint",
    "TokenManager",
    "TokenStore",
]

logger = logging.getLogger("wechat_kf.tokens")


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


class MemoryTokenStore:
    """The default store: a dict in this process. Share one instance between clients."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}

    async def get(self, appid: str) -> AccessToken | None:
        """Return the stored token for ``appid`` or ``None``."""
        return self._tokens.get(appid)

    async def set(self, appid: str, token: AccessToken) -> None:
        """Store ``token`` for ``appid``."""
        self._tokens[appid] = token

    async def delete(self, appid: str) -> None:
        """Forget the token for ``appid``."""
        self._tokens.pop(appid, None)

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
    """Build an :class:`AccessToken` from a token endpoint's decoded answer."""
    value = payload.get("access_token")
    expires_in = payload.get("expires_in")
    if not isinstance(value, str) or not value:
        raise MalformedResponseError("token response has no access_token string")
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
        raise MalformedResponseError("token response has no positive integer expires_in")
    return AccessToken(value, now + expires_in)


class TokenManager:
    """Keeps one fresh access token for an appid, shared by every request of a client.

    * ``get()`` returns the cached token without locking while it is fresh; otherwise one caller
      fetches (single flight) while the others wait, at most ``lock_timeout`` seconds.
    * ``recover(rejected)`` is called when WeChat rejected a token (40001/40014/42001): it
      refreshes only if the store still holds the rejected token, so N concurrent rejections
      cause one fetch. When the stable endpoint hands back the very token that failed, it asks
      once for ``force_refresh``, within WeChat's limits (20 a day, 30 s apart).
    """

    def __init__(
        self,
        *,
        appid: str,
        store: TokenStore,
        fetch: Fetcher,
        endpoint: TokenEndpoint = TokenEndpoint.STABLE,
        refresh_margin: float = _defaults.TOKEN_REFRESH_MARGIN,
        lock_timeout: float = _defaults.TOKEN_LOCK_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.appid = appid
        self.store = store
        self.endpoint = endpoint
        self.refresh_margin = refresh_margin
        self.lock_timeout = lock_timeout
        self._fetch = fetch
        self._clock = clock
        self._cached: AccessToken | None = None
        self._lock: anyio.Lock | None = None
        self._forced: collections.deque[float] = collections.deque()
        #: How many times this manager called the token endpoint (for tests and metrics).
        self.fetch_count = 0

    def __repr__(self) -> str:
        return f"TokenManager(appid={self.appid!r}, endpoint={self.endpoint.value!r})"

    async def get(self) -> str:
        """Return a token valid for longer than the refresh margin, fetching if needed."""
        cached = self._cached
        if cached is not None and cached.expires_at - self._clock() > self.refresh_margin:
            return cached.value
        return (await self._refresh(rejected=None)).value

    async def recover(self, rejected: str) -> str:
        """WeChat rejected ``rejected``: return another fresh token (compare-and-invalidate)."""
        return (await self._refresh(rejected=rejected)).value

    async def invalidate(self) -> None:
        """Forget the current token here and in the store; the next call fetches a new one."""
        self._cached = None
        await self.store.delete(self.appid)

    def _lock_for_loop(self) -> anyio.Lock:
        if self._lock is None:
            self._lock = anyio.Lock()
        return self._lock

    async def _refresh(self, *, rejected: str | None) -> AccessToken:
        lock = self._lock_for_loop()
        try:
            with anyio.fail_after(self.lock_timeout):
                await lock.acquire()
        except TimeoutError:
            raise TokenRefreshTimeoutError(
                f"waited {self.lock_timeout:g} s for the access token refresh of {self.appid}"
            ) from None
        try:
            # Double-check under the lock: another caller may have refreshed meanwhile.
            stored = await self.store.get(self.appid)
            now = self._clock()
            if (
                stored is not None
                and stored.value != rejected
                and stored.is_fresh(self.refresh_margin, now)
            ):
                self._cached = stored
                return stored
            token = await self._fetch_counted(force=False)
            if rejected is not None and token.value == rejected:
                token = await self._force_refresh(rejected)
            await self.store.set(self.appid, token)
            self._cached = token
            return token
        finally:
            lock.release()

    async def _fetch_counted(self, *, force: bool) -> AccessToken:
        self.fetch_count += 1
        logger.debug("fetching access token for %s (force_refresh=%s)", self.appid, force)
        return await self._fetch(force)

    async def _force_refresh(self, rejected: str) -> AccessToken:
        if self.endpoint is not TokenEndpoint.STABLE:
            # The classic endpoint always issues a new token; an equal one is WeChat's problem.
            raise ForceRefreshLimitedError("the token endpoint returned the rejected token again")
        now = self._clock()
        day_ago = now - 86400
        while self._forced and self._forced[0] < day_ago:
            self._forced.popleft()
        if len(self._forced) >= _defaults.FORCE_REFRESH_PER_DAY:
            raise ForceRefreshLimitedError(
                f"stable_token keeps returning a rejected token and force_refresh was used "
                f"{_defaults.FORCE_REFRESH_PER_DAY} times in 24 h (WeChat's daily limit)"
            )
        if self._forced and now - self._forced[-1] < _defaults.FORCE_REFRESH_MIN_INTERVAL:
            raise ForceRefreshLimitedError(
                f"stable_token returned a rejected token and the last force_refresh was less "
                f"than {_defaults.FORCE_REFRESH_MIN_INTERVAL:g} s ago (WeChat's minimum interval)"
            )
        self._forced.append(now)
        logger.warning("access token for %s rejected though current: force_refresh", self.appid)
        token = await self._fetch_counted(force=True)
        if token.value == rejected:
            raise ForceRefreshLimitedError("force_refresh returned the rejected token again")
        return token
