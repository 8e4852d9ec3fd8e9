"""A :class:`~wechat_kf.callback.DuplicateStore` on Redis, shared by every worker process."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Final

from wechat_kf._redis import RedisStore, Script
from wechat_kf.callback._dedupe import IN_PROGRESS, DuplicateEntry
from wechat_kf.callback._defaults import DUPLICATE_STORE_TIMEOUT
from wechat_kf.callback._errors import DuplicateStoreError
from wechat_kf.callback._replies import SUCCESS

if TYPE_CHECKING:
    from wechat_kf._errors import StoreError

__all__ = ["RedisDuplicateStore"]

_DONE: Final = b"done:"

# KEYS: the push key. ARGV: the claim's TTL in ms. The entry it holds, or nil once claimed.
_CLAIM: Final = """
local entry = redis.call('GET', KEYS[1])
if entry then return entry end
redis.call('SET', KEYS[1], 'in_progress', 'PX', ARGV[1])
return false
"""


def _milliseconds(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


def _entry(value: bytes | str) -> DuplicateEntry:
    """Decode a stored value (``bytes``, or ``str`` from a ``decode_responses`` client)."""
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if raw.startswith(_DONE):
        return DuplicateEntry("done", raw[len(_DONE) :])
    if raw == b"done":  # written by a release that kept no reply: it answered success
        return DuplicateEntry("done", SUCCESS)
    return IN_PROGRESS  # b"in_progress", or anything else: never acknowledged as done


class RedisDuplicateStore(RedisStore):
    """Push keys and their replies in Redis, shared by every worker (extra ``wechat_kf[redis]``).

    Each operation is one round trip and atomic: a claim runs a Lua script (``GET`` the key; if
    absent, ``SET key in_progress PX ttl``; return what it held), marking done is
    ``SET key done:<reply> PX ttl`` (the reply is the response body, a few hundred bytes to a
    few KiB), forgetting is ``DEL key``. Any value other than those counts as in progress:
    never acknowledged without its reply.

    The connection conventions are those of every Redis store of the SDK
    (:class:`~wechat_kf.RedisTokenStore` among them): pass your ``redis.asyncio`` client
    (standalone, Cluster or Sentinel master; you close it, and it can be the one your token
    store uses; its ``decode_responses`` setting does not matter) or use :meth:`from_url`; keys
    are ``prefix`` + the deduplicator's key (``wechat_kf:callback:...`` by default); every
    operation is bounded by ``timeout`` seconds and a Redis failure raises
    :class:`DuplicateStoreError` (its ``__cause__`` is redis-py's exception), never a raw
    redis error or an endless wait. asyncio only, like redis.asyncio.
    """

    error: ClassVar[type[StoreError]] = DuplicateStoreError
    default_timeout: ClassVar[float] = DUPLICATE_STORE_TIMEOUT
    _claim = Script(_CLAIM)

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        """Claim ``key`` for ``ttl`` seconds: ``None`` if claimed now (atomic), else its entry."""
        name = self.prefix + key
        held = await self.run(
            "claim", key, lambda: self._claim(keys=[name], args=[_milliseconds(ttl)])
        )
        return None if held is None else _entry(held)

    async def mark_done(self, key: str, reply: bytes, ttl: float) -> None:
        """Mark ``key`` done with ``reply`` for ``ttl`` seconds from now (replacing the claim)."""
        name = self.prefix + key
        value = _DONE + bytes(reply)
        await self.run("mark done", key, lambda: self.redis.set(name, value, px=_milliseconds(ttl)))

    async def forget(self, key: str) -> None:
        """Remove ``key`` so that a retry processes the push."""
        name = self.prefix + key
        await self.run("release", key, lambda: self.redis.delete(name))
