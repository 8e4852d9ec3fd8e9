"""``RedisTokenStore``: one access token per appid shared by every process and host, on Redis.

Install with ``pip install 'wechat_kf[redis]'`` (redis-py's ``redis.asyncio``; asyncio only).

Keys, for appid ``wx123`` and the default prefix ``wechat_kf:``::

    wechat_kf:{wx123}:token          hash: access_token, expires_at (unix seconds, float)
    wechat_kf:{wx123}:lock           string: the fence of the process refreshing, with a TTL
    wechat_kf:{wx123}:force_refresh  sorted set: force_refresh calls of the last 24 h

The ``{appid}`` hash tag keeps one appid's keys in one Redis Cluster slot, so every multi-key
operation is a single atomic Lua script on a single node. Every operation is bounded by
``timeout`` (retries included) and fails with :class:`~wechat_kf.TokenStoreError`, never with a
raw redis-py exception.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import sniffio

from wechat_kf import _defaults
from wechat_kf._redaction import redact
from wechat_kf._tokens import AccessToken, ForceRefreshClaim, TokenStoreError, new_fence

try:
    import redis.asyncio as redis_asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import EqualJitterBackoff
    from redis.exceptions import RedisClusterException, RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("RedisTokenStore needs redis-py: pip install 'wechat_kf[redis]'") from exc

if TYPE_CHECKING:
    from typing_extensions import Self

    RedisClient = redis_asyncio.Redis | redis_asyncio.RedisCluster

__all__ = ["RedisTokenStore"]

T = TypeVar("T")

#: Keep the token key this long after the token expires (so "expired N s ago" can be said).
_KEY_GRACE_MS: Final = 60_000

_SET: Final = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'access_token', ARGV[1], 'expires_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: token, lock. ARGV: has_fence, fence, has_expected, expected, value, expires_at, ttl_ms
_COMPARE_AND_SET: Final = """
if ARGV[1] == '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[2] then return 0 end
end
local current = redis.call('HGET', KEYS[1], 'access_token')
if ARGV[3] == '1' then
  if current ~= ARGV[4] then return 0 end
elseif current then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'access_token', ARGV[5], 'expires_at', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return 1
"""

_COMPARE_AND_DELETE: Final = """
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

_UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: lock. ARGV: fence, ttl_ms
_EXTEND_LOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: ledger. ARGV: now, exclusive cutoff '(t', per_day, min_interval, member, ttl_s
_CLAIM_FORCE_REFRESH: Final = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 1 end
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if last[2] and tonumber(ARGV[1]) - tonumber(last[2]) < tonumber(ARGV[4]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 0
"""

_CLAIMS: Final = {
    0: ForceRefreshClaim.GRANTED,
    1: ForceRefreshClaim.DAILY_LIMIT,
    2: ForceRefreshClaim.TOO_SOON,
}


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _ttl_ms(expires_at: float) -> int:
    return max(1, int((expires_at - time.time()) * 1000) + _KEY_GRACE_MS)


class RedisTokenStore:
    """A token store on Redis, shared by every process and host that uses the same appid.

    Implements the whole store contract (:class:`~wechat_kf.LockingTokenStore`, its lock
    renewal and :class:`~wechat_kf.ForceRefreshLedger`): the token and its expiry are one hash
    written atomically; the refresh lock is ``SET NX PX`` with a fence, renewed (``PEXPIRE``)
    and released only by its owner, and expiring after the manager's lock TTL; writes are
    compare-and-set and invalidation is compare-and-delete, each a Lua script.

    Args:
        redis: A ``redis.asyncio.Redis`` (also what ``Sentinel.master_for()`` returns) or
            ``redis.asyncio.RedisCluster``. Its ``decode_responses`` setting does not matter.
            Give it a ``socket_timeout``: ``timeout`` below bounds each operation anyway.
        prefix: Prepended to every key (no ``{`` or ``}``: the appid is the cluster hash tag).
        timeout: The longest any one store operation may take, redis-py's retries included;
            beyond it the operation fails with :class:`~wechat_kf.TokenStoreError`.

    A client you pass in is yours to close; one made by :meth:`from_url` is closed by
    :meth:`aclose` (or ``async with``).
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = _defaults.REDIS_KEY_PREFIX,
        timeout: float = _defaults.TOKEN_STORE_TIMEOUT,
    ) -> None:
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a string without '{{' or '}}', got {prefix!r}")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.redis = redis
        self.prefix = prefix
        self.timeout = timeout
        self._owns_client = False
        self._set = redis.register_script(_SET)
        self._cas = redis.register_script(_COMPARE_AND_SET)
        self._cad = redis.register_script(_COMPARE_AND_DELETE)
        self._unlock = redis.register_script(_UNLOCK)
        self._extend = redis.register_script(_EXTEND_LOCK)
        self._claim = redis.register_script(_CLAIM_FORCE_REFRESH)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = _defaults.REDIS_KEY_PREFIX,
        timeout: float = _defaults.TOKEN_STORE_TIMEOUT,
        **redis_options: Any,
    ) -> RedisTokenStore:
        """A store on a new ``redis.asyncio.Redis`` for ``url`` (``redis://``, ``rediss://``,
        ``unix://``), with short socket timeouts and few retries; ``redis_options`` override
        them and go to ``Redis.from_url``. Close it with :meth:`aclose` or ``async with``.
        """
        redis_options.setdefault("socket_timeout", _defaults.REDIS_SOCKET_TIMEOUT)
        redis_options.setdefault("socket_connect_timeout", _defaults.REDIS_SOCKET_TIMEOUT)
        redis_options.setdefault(
            "retry", Retry(EqualJitterBackoff(cap=0.5, base=0.05), _defaults.REDIS_RETRIES)
        )
        client = redis_asyncio.Redis.from_url(url, **redis_options)
        store = cls(client, prefix=prefix, timeout=timeout)
        store._owns_client = True
        return store

    def __repr__(self) -> str:
        return f"RedisTokenStore(prefix={self.prefix!r}, client={type(self.redis).__name__})"

    # ------------------------------------------------------------------ keys

    def _key(self, appid: str, kind: str) -> str:
        if "{" in appid or "}" in appid:
            raise ValueError(f"appid must not contain '{{' or '}}', got {appid!r}")
        return f"{self.prefix}{{{appid}}}:{kind}"

    def token_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s token hash (fields ``access_token``, ``expires_at``)."""
        return self._key(appid, "token")

    def lock_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s refresh lock."""
        return self._key(appid, "lock")

    def force_refresh_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s force-refresh ledger (a sorted set of timestamps)."""
        return self._key(appid, "force_refresh")

    # ------------------------------------------------------------------ plumbing

    async def _run(self, what: str, appid: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            library = sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            library = "no event loop"
        if library != "asyncio":
            raise TokenStoreError(
                f"RedisTokenStore runs on asyncio only (redis.asyncio), not on {library}"
            )
        try:
            with anyio.fail_after(self.timeout):
                return await call()
        except TimeoutError:
            raise TokenStoreError(
                f"Redis {what} for {appid} took longer than {self.timeout:g} s"
            ) from None
        except (RedisError, RedisClusterException) as exc:
            detail = redact(str(exc)) or "no detail"
            raise TokenStoreError(
                f"Redis {what} for {appid} failed: {type(exc).__name__}: {detail}"
            ) from exc
        except Exception as exc:
            # Anything else out of redis-py (a client bug, a broken connection object) is a
            # store failure too: callers handle one typed error, with the cause chained.
            raise TokenStoreError(
                f"Redis {what} for {appid} failed unexpectedly: {type(exc).__name__}"
            ) from exc

    # ------------------------------------------------------------------ TokenStore

    async def get(self, appid: str) -> AccessToken | None:
        """The stored token for ``appid`` (possibly expired), or ``None``."""
        key = self.token_key(appid)
        fields = await self._run(
            "read", appid, lambda: self.redis.hmget(key, ["access_token", "expires_at"])
        )
        value, expires_at = (_text(field) for field in fields)
        if value is None and expires_at is None:
            return None
        try:
            expiry = float(expires_at) if value and expires_at is not None else None
        except ValueError:
            expiry = None
        if value is None or expiry is None:
            raise TokenStoreError(
                f"Redis key {key} is malformed: a hash with fields access_token and "
                f"expires_at (unix seconds) was expected"
            )
        return AccessToken(value, expiry)

    async def set(self, appid: str, token: AccessToken) -> None:
        """Store ``token`` for ``appid`` unconditionally (for seeding and token services)."""
        args: list[str | int] = [token.value, repr(token.expires_at), _ttl_ms(token.expires_at)]
        await self._run("write", appid, lambda: self._set([self.token_key(appid)], args))

    async def delete(self, appid: str) -> None:
        """Forget the token for ``appid``."""
        key = self.token_key(appid)
        await self._run("delete", appid, lambda: self.redis.delete(key))

    # ------------------------------------------------------------------ LockingTokenStore

    async def try_lock(self, appid: str, ttl: float) -> str | None:
        """``SET lock fence NX PX ttl``: a fence if the lock was free, else ``None``."""
        fence = new_fence()
        key = self.lock_key(appid)
        ttl_ms = max(1, int(ttl * 1000))
        taken = await self._run(
            "lock", appid, lambda: self.redis.set(key, fence, nx=True, px=ttl_ms)
        )
        return fence if taken else None

    async def unlock(self, appid: str, fence: str) -> bool:
        """Release the lock if ``fence`` still holds it."""
        key = self.lock_key(appid)
        released = await self._run("unlock", appid, lambda: self._unlock([key], [fence]))
        return bool(released)

    async def extend_lock(self, appid: str, fence: str, ttl: float) -> bool:
        """``PEXPIRE lock ttl`` if ``fence`` still holds the lock (one Lua script)."""
        key = self.lock_key(appid)
        args: list[str | int] = [fence, max(1, int(ttl * 1000))]
        extended = await self._run("lock renewal", appid, lambda: self._extend([key], args))
        return bool(extended)

    async def compare_and_set(
        self, appid: str, token: AccessToken, *, expected: str | None, fence: str | None = None
    ) -> bool:
        """Store ``token`` if the stored value is ``expected`` and no other fence holds the lock."""
        keys = [self.token_key(appid), self.lock_key(appid)]
        args: list[str | int] = [
            "0" if fence is None else "1",
            fence or "",
            "0" if expected is None else "1",
            expected or "",
            token.value,
            repr(token.expires_at),
            _ttl_ms(token.expires_at),
        ]
        stored = await self._run("compare-and-set", appid, lambda: self._cas(keys, args))
        return bool(stored)

    async def compare_and_delete(self, appid: str, value: str) -> bool:
        """Delete the stored token if its value is ``value``."""
        key = self.token_key(appid)
        deleted = await self._run("compare-and-delete", appid, lambda: self._cad([key], [value]))
        return bool(deleted)

    # ------------------------------------------------------------------ ForceRefreshLedger

    async def claim_force_refresh(
        self, appid: str, *, now: float, per_day: int, min_interval: float
    ) -> ForceRefreshClaim:
        """Check the force-refresh limits for every process at once and record a claim."""
        key = self.force_refresh_key(appid)
        args: list[str | int] = [
            repr(now),
            f"({now - 86400!r}",
            per_day,
            repr(min_interval),
            new_fence(),
            86460,
        ]
        answer = await self._run("force-refresh claim", appid, lambda: self._claim([key], args))
        return _CLAIMS[int(answer)]

    # ------------------------------------------------------------------ life

    async def aclose(self) -> None:
        """Close the Redis client if :meth:`from_url` made it."""
        if self._owns_client:
            await self.redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
