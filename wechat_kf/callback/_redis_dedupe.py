"""A :class:`~wechat_kf.callback.DuplicateStore` on Redis, shared by every worker process."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Final

from wechat_kf._redis import RedisStore
from wechat_kf.callback._dedupe import DuplicateState
from wechat_kf.callback._defaults import DUPLICATE_STORE_TIMEOUT
from wechat_kf.callback._errors import DuplicateStoreError

if TYPE_CHECKING:
    from wechat_kf._errors import StoreError
    from wechat_kf._redis import RedisClient

__all__ = ["RedisDuplicateStore"]

_IN_PROGRESS: Final = b"in_progress"
_DONE: Final = b"done"


def _milliseconds(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisDuplicateStore(RedisStore):
    """Push keys in Redis, shared by every worker (extra ``wechat_kf[redis]``).

    A new push costs ``SET key in_progress NX PX ttl`` (the atomic claim), then
    ``SET key done PX ttl`` once handled, or ``DEL key`` when handling failed. A retry whose
    claim fails adds a ``GET`` to tell ``"done"`` from ``"in_progress"`` (any other value, or a
    key gone meanwhile, counts as ``"in_progress"``: WeChat simply retries); no Lua, any Redis.

    The connection conventions are those of every Redis store of the SDK
    (:class:`~wechat_kf.RedisTokenStore` among them): pass your ``redis.asyncio`` client
    (standalone, Cluster or Sentinel master; you close it, and it can be the one your token
    store uses) or use :meth:`from_url`; keys are ``prefix`` + the deduplicator's key
    (``wechat_kf:callback:...`` by default); every operation is bounded by ``timeout`` seconds
    and a Redis failure raises :class:`DuplicateStoreError` (its ``__cause__`` is redis-py's
    exception), never a raw redis error or an endless wait. asyncio only, like redis.asyncio.
    """

    error: ClassVar[type[StoreError]] = DuplicateStoreError
    default_timeout: ClassVar[float] = DUPLICATE_STORE_TIMEOUT

    def __init__(
        self,
        redis: RedisClient,
        *,
        prefix: str = "wechat_kf:",
        timeout: float | None = None,
    ) -> None:
        super().__init__(redis, prefix=prefix, timeout=timeout)

    async def seen(self, key: str, ttl: float) -> DuplicateState | None:
        """Claim ``key`` for ``ttl`` seconds: ``None`` if claimed now (atomic), else its state."""
        name = self.prefix + key
        created = await self.run(
            "claim",
            key,
            lambda: self.redis.set(name, _IN_PROGRESS, nx=True, px=_milliseconds(ttl)),
        )
        if created:
            return None
        state = await self.run("read", key, lambda: self.redis.get(name))
        return "done" if state in (_DONE, "done") else "in_progress"  # decode_responses: str

    async def mark_done(self, key: str, ttl: float) -> None:
        """Mark ``key`` done for ``ttl`` seconds from now (replacing its in-progress expiry)."""
        name = self.prefix + key
        await self.run("mark done", key, lambda: self.redis.set(name, _DONE, px=_milliseconds(ttl)))

    async def forget(self, key: str) -> None:
        """Unmark ``key`` so WeChat's retry is processed."""
        name = self.prefix + key
        await self.run("release", key, lambda: self.redis.delete(name))
