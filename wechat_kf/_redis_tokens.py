"""``RedisTokenStore``: one access token per appid shared by every process and host, on Redis.

Install with ``pip install 'wechat_kf[redis]'`` (redis-py's ``redis.asyncio``; asyncio only).

Keys, for appid ``wx123`` and the default prefix ``wechat_kf:``::

    wechat_kf:{wx123}:token          hash: access_token, expires_at (unix seconds, float)
    wechat_kf:{wx123}:lock           string: the fence of the process refreshing, with a TTL
    wechat_kf:{wx123}:force_refresh  sorted set: force_refresh calls of the last 24 h

The ``{appid}`` hash tag keeps one appid's keys in one Redis Cluster slot, so every multi-key
operation is a single atomic Lua script on a single node. The connection conventions (your
client or ``from_url``, bounded operations, typed errors) are those of every Redis store of the
SDK (:class:`wechat_kf._redis.RedisStore`); failures raise :class:`~wechat_kf.TokenStoreError`.

A lock attempt whose answer never came (Redis stalled, the connection dropped) may still take
the lock once Redis resumes, with nobody left to release it. The store remembers such fences
for the lock's TTL, and its next lock attempt recognises one of them holding the lock and takes
it over at once, instead of waiting out the TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Final

from wechat_kf import _defaults
from wechat_kf._redis import RELEASE_LOCK, RedisStore, Script, text
from wechat_kf._tokens import AccessToken, ForceRefreshClaim, TokenStoreError, new_fence

if TYPE_CHECKING:
    from wechat_kf._errors import StoreError
    from wechat_kf._redis import RedisClient

__all__ = ["RedisTokenStore"]

#: Keep the token key this long after the token expires (so "expired N s ago" can be said).
_KEY_GRACE_MS: Final = 60_000

_SET: Final = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'access_token', ARGV[1], 'expires_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: token, lock. ARGV: fence ('' for none), expected ('': nothing stored; a token is never
# empty), value, expires_at, ttl_ms
_COMPARE_AND_SET: Final = """
if ARGV[1] ~= '' then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[1] then return 0 end
end
local current = redis.call('HGET', KEYS[1], 'access_token')
if ARGV[2] ~= '' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'access_token', ARGV[3], 'expires_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

_COMPARE_AND_DELETE: Final = """
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: lock. ARGV: fence, ttl_ms, then fences of this store's attempts that got no answer.
# Free, or held by one of those orphans: take it (an orphan has nobody left to release it).
_LOCK: Final = """
local holder = redis.call('GET', KEYS[1])
if holder then
  local known = false
  for i = 3, #ARGV do
    if holder == ARGV[i] then known = true end
  end
  if not known then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: Fences of unanswered lock attempts remembered per appid (the newest win).
_MAX_ORPHANS: Final = 8

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


def _ttl_ms(expires_at: float) -> int:
    return max(1, int((expires_at - time.time()) * 1000) + _KEY_GRACE_MS)


def _px(seconds: float) -> int:
    """A TTL in milliseconds, as ``SET PX`` and ``PEXPIRE`` take it (1 ms at least)."""
    milliseconds = int(seconds * 1000)
    return max(1, milliseconds)  # pragma: no mutate (1 or 2 ms: no lock is that short)


class RedisTokenStore(RedisStore):
    """A token store on Redis, shared by every process and host that uses the same appid.

    Implements the whole store contract (:class:`~wechat_kf.LockingTokenStore`, its lock
    renewal and :class:`~wechat_kf.ForceRefreshLedger`): the token and its expiry are one hash
    written atomically; the refresh lock is a fenced key with a TTL, renewed (``PEXPIRE``) and
    released only by its owner, and expiring after the manager's lock TTL; writes are
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

    error: ClassVar[type[StoreError]] = TokenStoreError
    default_timeout: ClassVar[float] = _defaults.TOKEN_STORE_TIMEOUT
    _set = Script(_SET)
    _cas = Script(_COMPARE_AND_SET)
    _cad = Script(_COMPARE_AND_DELETE)
    _lock = Script(_LOCK)
    _unlock = Script(RELEASE_LOCK)
    _extend = Script(_EXTEND_LOCK)
    _claim = Script(_CLAIM_FORCE_REFRESH)

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = _defaults.REDIS_KEY_PREFIX,
        timeout: float | None = None,
    ) -> None:
        super().__init__(redis, prefix=prefix, timeout=timeout)
        # appid -> {fence: monotonic time until which it may hold the lock}
        self._orphans: dict[str, dict[str, float]] = {}
        # fence -> the ttl it last set (try_lock, extend_lock), for the orphan of a failed unlock
        self._ttls: dict[str, float] = {}
        # The clock of that bookkeeping (the lock's own TTL is Redis's): tests set a fake one.
        self._monotonic: Callable[[], float] = time.monotonic

    # ------------------------------------------------------------------ keys

    def token_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s token hash (fields ``access_token``, ``expires_at``)."""
        return self.key(appid, "token")

    def lock_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s refresh lock."""
        return self.key(appid, "lock")

    def force_refresh_key(self, appid: str) -> str:
        """The Redis key of ``appid``'s force-refresh ledger (a sorted set of timestamps)."""
        return self.key(appid, "force_refresh")

    # ------------------------------------------------------------------ TokenStore

    async def get(self, appid: str) -> AccessToken | None:
        """The stored token for ``appid`` (possibly expired), or ``None``."""
        key = self.token_key(appid)
        fields = await self.run(
            "read", appid, lambda: self.redis.hmget(key, ["access_token", "expires_at"])
        )
        value, expires_at = (text(field) for field in fields)
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
        await self.run("write", appid, lambda: self._set([self.token_key(appid)], args))

    async def delete(self, appid: str) -> None:
        """Forget the token for ``appid``."""
        key = self.token_key(appid)
        await self.run("delete", appid, lambda: self.redis.delete(key))

    # ------------------------------------------------------------------ LockingTokenStore

    async def try_lock(self, appid: str, ttl: float) -> str | None:
        """Take the refresh lock for ``ttl`` seconds: a fence if it was free, else ``None``.

        A lock still held by one of this store's earlier attempts that got no answer (see the
        module docstring) counts as free.
        """
        fence = new_fence()
        key = self.lock_key(appid)
        args: list[str | int] = [fence, _px(ttl), *self._live_orphans(appid)]
        try:
            taken = await self.run("lock", appid, lambda: self._lock([key], args))
        except TokenStoreError:
            # The SET may still run once Redis answers again: remember whose it would be.
            self._remember_orphan(appid, fence, ttl)
            raise
        if not taken:
            return None
        self._orphans.pop(appid, None)
        self._held(fence, ttl)
        return fence

    async def unlock(self, appid: str, fence: str) -> bool:
        """Release the lock if ``fence`` still holds it."""
        key = self.lock_key(appid)
        ttl = self._ttls.pop(fence, _defaults.TOKEN_LOCK_TTL)
        try:
            released = await self.run("unlock", appid, lambda: self._unlock([key], [fence]))
        except TokenStoreError:
            # Still held, maybe: the next lock attempt of this store takes it over.
            self._remember_orphan(appid, fence, ttl)
            raise
        return bool(released)

    async def extend_lock(self, appid: str, fence: str, ttl: float) -> bool:
        """``PEXPIRE lock ttl`` if ``fence`` still holds the lock (one Lua script)."""
        key = self.lock_key(appid)
        args: list[str | int] = [fence, _px(ttl)]
        extended = await self.run("lock renewal", appid, lambda: self._extend([key], args))
        if extended:
            self._held(fence, ttl)
        return bool(extended)

    def _held(self, fence: str, ttl: float) -> None:
        self._ttls[fence] = ttl
        while len(self._ttls) > _MAX_ORPHANS:  # a holder that never unlocked (cancelled)
            del self._ttls[next(iter(self._ttls))]

    def _remember_orphan(self, appid: str, fence: str, ttl: float) -> None:
        orphans = self._orphans.setdefault(appid, {})
        # The SET may run any time until Redis gives up on the connection: the lock then
        # lives ttl from that moment. Remember the fence a generous while past its ttl.
        orphans[fence] = self._monotonic() + ttl + self.timeout
        while len(orphans) > _MAX_ORPHANS:
            del orphans[next(iter(orphans))]

    def _live_orphans(self, appid: str) -> list[str]:
        orphans = self._orphans.get(appid)
        if not orphans:
            return []
        now = self._monotonic()
        for fence in [fence for fence, until in orphans.items() if until <= now]:
            del orphans[fence]
        return list(orphans)

    async def compare_and_set(
        self, appid: str, token: AccessToken, *, expected: str | None, fence: str | None = None
    ) -> bool:
        """Store ``token`` if the stored value is ``expected`` and no other fence holds the lock."""
        keys = [self.token_key(appid), self.lock_key(appid)]
        args: list[str | int] = [
            fence or "",
            expected or "",
            token.value,
            repr(token.expires_at),
            _ttl_ms(token.expires_at),
        ]
        stored = await self.run("compare-and-set", appid, lambda: self._cas(keys, args))
        return bool(stored)

    async def compare_and_delete(self, appid: str, value: str) -> bool:
        """Delete the stored token if its value is ``value``."""
        key = self.token_key(appid)
        deleted = await self.run("compare-and-delete", appid, lambda: self._cad([key], [value]))
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
        answer = await self.run("force-refresh claim", appid, lambda: self._claim([key], args))
        return _CLAIMS[int(answer)]
