"""``RedisMediaIdStore``: the media-id cache shared by every process and host, on Redis.

Install with ``pip install 'wechat_kf[redis]'`` (redis-py's ``redis.asyncio``; asyncio only).

Keys, for appid ``wx123``, the default prefix ``wechat_kf:`` and the file key
``image:<sha256>``::

    wechat_kf:{wx123}:media:image:<sha256>        hash: media_id, type, created_at, expires_at
    wechat_kf:{wx123}:media_lock:image:<sha256>   string: the fence of the process uploading

Both expire on their own (the media shortly before WeChat's 3 days, the lock after its TTL).
The connection conventions (your client or ``from_url``, bounded operations, typed errors) are
those of every Redis store of the SDK (:class:`wechat_kf._redis.RedisStore`); failures raise
:class:`~wechat_kf.MediaStoreError`, which the cache logs before uploading without the store.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Final

from wechat_kf import _defaults
from wechat_kf._errors import MediaStoreError, StoreError
from wechat_kf._media_ids import UploadedMedia, media_from_fields
from wechat_kf._redis import RELEASE_LOCK, RedisStore, Script, text
from wechat_kf._tokens import new_fence

if TYPE_CHECKING:
    pass

__all__ = ["RedisMediaIdStore"]

_FIELDS: Final = ("media_id", "type", "created_at", "expires_at")

# KEYS: media. ARGV: media_id, type, created_at, expires_at, ttl_ms
_SET: Final = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'media_id', ARGV[1], 'type', ARGV[2],
           'created_at', ARGV[3], 'expires_at', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

_COMPARE_AND_DELETE: Final = """
if redis.call('HGET', KEYS[1], 'media_id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisMediaIdStore(RedisStore):
    """A media-id store on Redis: every process sharing it uploads a file once between them.

    Each entry is one hash written atomically with its expiry; the upload lock is a fenced key
    (``SET NX PX``) released only by its holder (a Lua compare-and-delete). One Redis client can
    serve this store and the token store (:class:`~wechat_kf.RedisTokenStore`) together.

    Args:
        redis: A ``redis.asyncio.Redis`` (also what ``Sentinel.master_for()`` returns) or
            ``redis.asyncio.RedisCluster``; its ``decode_responses`` setting does not matter.
        prefix: Prepended to every key (no ``{`` or ``}``: the appid is the cluster hash tag).
        timeout: The longest any one operation may take (default 5 s); beyond it the operation
            fails with :class:`~wechat_kf.MediaStoreError`.
    """

    error: ClassVar[type[StoreError]] = MediaStoreError
    default_timeout: ClassVar[float] = _defaults.MEDIA_STORE_TIMEOUT
    _set = Script(_SET)
    _cad = Script(_COMPARE_AND_DELETE)
    _unlock = Script(RELEASE_LOCK)

    def media_key(self, appid: str, key: str) -> str:
        """The Redis key of a file's media hash."""
        return self.key(appid, f"media:{key}")

    def lock_key(self, appid: str, key: str) -> str:
        """The Redis key of a file's upload lock."""
        return self.key(appid, f"media_lock:{key}")

    async def get(self, appid: str, key: str) -> UploadedMedia | None:
        """The media stored for ``key``, or ``None``."""
        name = self.media_key(appid, key)
        fields = await self.run("read", appid, lambda: self.redis.hmget(name, list(_FIELDS)))
        media_id, kind, created_at, expires_at = (text(field) for field in fields)
        if media_id is None and kind is None and created_at is None and expires_at is None:
            return None
        malformed = MediaStoreError(
            f"Redis key {name} is malformed: a hash with fields {', '.join(_FIELDS)} "
            "(times in unix seconds) was expected"
        )
        if not media_id or not kind or created_at is None or expires_at is None:
            raise malformed
        try:
            return media_from_fields(media_id, kind, float(created_at), float(expires_at))
        except (ValueError, OverflowError):
            raise malformed from None

    async def set(self, appid: str, key: str, media: UploadedMedia, ttl: float) -> None:
        """Store ``media`` for ``key`` for ``ttl`` seconds (one Lua script)."""
        args: list[str | int] = [
            media.media_id,
            str(media.type),
            repr(media.created_at.timestamp()),
            repr(media.expires_at.timestamp()),
            _milliseconds(ttl),
        ]
        name = self.media_key(appid, key)
        await self.run("write", appid, lambda: self._set([name], args))

    async def compare_and_delete(self, appid: str, key: str, media_id: str) -> bool:
        """Forget ``key`` if it holds ``media_id`` (one Lua script)."""
        name = self.media_key(appid, key)
        deleted = await self.run("compare-and-delete", appid, lambda: self._cad([name], [media_id]))
        return bool(deleted)

    async def try_lock(self, appid: str, key: str, ttl: float) -> str | None:
        """``SET lock fence NX PX ttl``: a fence if the lock was free, else ``None``."""
        fence = new_fence()
        name = self.lock_key(appid, key)
        taken = await self.run(
            "upload lock",
            appid,
            lambda: self.redis.set(name, fence, nx=True, px=_milliseconds(ttl)),
        )
        return fence if taken else None

    async def unlock(self, appid: str, key: str, fence: str) -> bool:
        """Release the upload lock if ``fence`` still holds it (one Lua script)."""
        name = self.lock_key(appid, key)
        released = await self.run("upload unlock", appid, lambda: self._unlock([name], [fence]))
        return bool(released)
