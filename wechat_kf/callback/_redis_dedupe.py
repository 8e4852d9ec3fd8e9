"""A :class:`~wechat_kf.callback.DuplicateStore` on Redis, shared by every worker process."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio

from wechat_kf.callback._errors import DuplicateStoreError

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisDuplicateStore"]


class RedisDuplicateStore:
    """Seen push keys in Redis: one ``SET key 1 NX PX ttl`` per push (extra ``wechat_kf[redis]``).

    ``client`` is your ``redis.asyncio`` client (standalone, Cluster or Sentinel master); you
    close it. Every operation is bounded by ``timeout`` seconds; a Redis failure raises
    :class:`DuplicateStoreError` (its ``__cause__`` is redis-py's exception), never a raw
    redis error or an endless wait. asyncio only, like redis.asyncio.
    """

    def __init__(self, client: redis.asyncio.Redis, *, timeout: float = 2.0) -> None:
        self.client = client
        self.timeout = timeout

    async def seen(self, key: str, ttl: float) -> bool:
        """Mark ``key`` for ``ttl`` seconds; ``True`` if it was already marked (atomic)."""
        created = await self._run(
            "SET NX", self.client.set(key, b"1", nx=True, px=max(1, math.ceil(ttl * 1000)))
        )
        return not created

    async def forget(self, key: str) -> None:
        """Unmark ``key`` so WeChat's retry is processed."""
        await self._run("DEL", self.client.delete(key))

    async def _run(self, what: str, command: object) -> object:
        from redis.exceptions import RedisError

        try:
            with anyio.fail_after(self.timeout):
                return await command  # type: ignore[misc]
        except TimeoutError as exc:
            raise DuplicateStoreError(f"Redis {what} took longer than {self.timeout:g} s") from exc
        except (RedisError, OSError) as exc:
            raise DuplicateStoreError(f"Redis {what} failed: {type(exc).__name__}") from exc

    def __repr__(self) -> str:
        return f"RedisDuplicateStore({self.client!r})"
