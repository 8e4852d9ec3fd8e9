"""A :class:`~wechat_kf.callback.DuplicateStore` on Redis, shared by every worker process."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio

from wechat_kf.callback._dedupe import DuplicateState
from wechat_kf.callback._errors import DuplicateStoreError

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisDuplicateStore"]

_IN_PROGRESS = b"in_progress"
_DONE = b"done"


def _milliseconds(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisDuplicateStore:
    """Push keys in Redis, shared by every worker (extra ``wechat_kf[redis]``).

    A new push costs ``SET key in_progress NX PX ttl`` (the atomic claim), then
    ``SET key done PX ttl`` once handled, or ``DEL key`` when handling failed. A retry whose
    claim fails adds a ``GET`` to tell ``"done"`` from ``"in_progress"`` (any other value, or a
    key gone meanwhile, counts as ``"in_progress"``: WeChat simply retries); no Lua, any Redis.

    ``client`` is your ``redis.asyncio`` client (standalone, Cluster or Sentinel master); you
    close it. Every operation is bounded by ``timeout`` seconds; a Redis failure raises
    :class:`DuplicateStoreError` (its ``__cause__`` is redis-py's exception), never a raw
    redis error or an endless wait. asyncio only, like redis.asyncio.
    """

    def __init__(self, client: redis.asyncio.Redis, *, timeout: float = 2.0) -> None:
        self.client = client
        self.timeout = timeout

    async def seen(self, key: str, ttl: float) -> DuplicateState | None:
        """Claim ``key`` for ``ttl`` seconds: ``None`` if claimed now (atomic), else its state."""
        created = await self._run(
            "SET NX", self.client.set(key, _IN_PROGRESS, nx=True, px=_milliseconds(ttl))
        )
        if created:
            return None
        state = await self._run("GET", self.client.get(key))
        return "done" if state in (_DONE, "done") else "in_progress"  # decode_responses: str

    async def mark_done(self, key: str, ttl: float) -> None:
        """Mark ``key`` done for ``ttl`` seconds from now (replacing its in-progress expiry)."""
        await self._run("SET", self.client.set(key, _DONE, px=_milliseconds(ttl)))

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
