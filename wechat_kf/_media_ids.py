"""Media ids: what an upload returns, where they are kept, and the cache that uploads once.

Sending ``Image(file="shop.jpg")`` to 100,000 users must upload the picture once, not 100,000
times, and eight worker processes sending it together must upload it once between them.
:class:`MediaIdCache` does that: it names a file by its content (its type and SHA-256) and keeps
the ``media_id`` of its upload in a :class:`MediaIdStore` until shortly before the media expires
(``MEDIA_REUSE_MARGIN`` before WeChat's 3 days). Uploads are single-flight: one per file for any
number of concurrent tasks (an in-process flight), and one for any number of processes sharing
a store (the store's upload lock, taken with a fence, as the token manager does).

The store follows the SDK's one store convention (``wechat_kf._stores``). Its contract, every
method atomic in the backend, keyed by appid and the file's ``key``:

* ``get(appid, key)``: the :class:`UploadedMedia` stored, or ``None``.
* ``set(appid, key, media, ttl)``: store ``media`` for ``ttl`` seconds, replacing any other.
* ``compare_and_delete(appid, key, media_id)``: forget the entry only if it holds ``media_id``
  (WeChat refused that id: an id someone stored since is left alone).
* ``try_lock(appid, key, ttl)``: take the upload lock of ``key`` for ``ttl`` seconds and return a
  fence unique to this holder, or ``None`` at once if someone holds it.
* ``unlock(appid, key, fence)``: release the lock only if ``fence`` still holds it.

:class:`MemoryMediaIdStore` is the default (this process); ``RedisMediaIdStore`` (extra
``wechat_kf[redis]``) is shared by every process. ``wechat_kf.testing.media_store_contract`` is
the test suite any store can run. A store outage never stops a send: the cache logs it and
uploads without the store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Final, Protocol, runtime_checkable

import anyio
import attrs

from wechat_kf import _defaults
from wechat_kf._errors import StoreError, ValidationError
from wechat_kf._files import MediaType
from wechat_kf._redaction import get_logger
from wechat_kf._stores import Clock, ExpiringMap
from wechat_kf._tokens import new_fence

__all__ = ["MediaIdCache", "MediaIdStore", "MemoryMediaIdStore", "UploadedMedia"]

logger: Final = get_logger("wechat_kf.media")

#: Uploads a file: what the cache calls on a miss.
Upload = Callable[[], Awaitable["UploadedMedia"]]


@attrs.frozen(kw_only=True)
class UploadedMedia:
    """A temporary media on WeChat: its ``media_id``, type, and when it stops working.

    ``expires_at`` is ``created_at`` + 3 days: WeChat deletes temporary media (and the
    ``media_id`` answers 40007) 3 days after the upload.
    """

    media_id: str
    type: MediaType
    created_at: datetime
    expires_at: datetime

    @classmethod
    def created(cls, media_id: str, kind: MediaType, created_at: datetime) -> UploadedMedia:
        """The media uploaded at ``created_at``, expiring 3 days later."""
        expires_at = created_at + timedelta(seconds=_defaults.MEDIA_LIFETIME)
        return cls(media_id=media_id, type=kind, created_at=created_at, expires_at=expires_at)

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the media expires (negative once it has), by unix time ``now``."""
        return self.expires_at.timestamp() - (time.time() if now is None else now)


def media_from_fields(
    media_id: str, kind: str, created_at: float, expires_at: float
) -> UploadedMedia:
    """An :class:`UploadedMedia` from a store's plain fields (unix seconds)."""
    return UploadedMedia(
        media_id=media_id,
        type=MediaType(kind),
        created_at=datetime.fromtimestamp(created_at, tz=timezone.utc),
        expires_at=datetime.fromtimestamp(expires_at, tz=timezone.utc),
    )


@runtime_checkable
class MediaIdStore(Protocol):
    """Where the media-id cache keeps uploads and upload locks. See the module docstring."""

    async def get(self, appid: str, key: str) -> UploadedMedia | None:
        """The media stored for ``key``, or ``None``."""
        ...

    async def set(self, appid: str, key: str, media: UploadedMedia, ttl: float) -> None:
        """Store ``media`` for ``key`` for ``ttl`` seconds, replacing any other."""
        ...

    async def compare_and_delete(self, appid: str, key: str, media_id: str) -> bool:
        """Forget ``key`` if it holds ``media_id``; whether it did."""
        ...

    async def try_lock(self, appid: str, key: str, ttl: float) -> str | None:
        """Take ``key``'s upload lock for ``ttl`` seconds: a fence, or ``None`` if it is held."""
        ...

    async def unlock(self, appid: str, key: str, fence: str) -> bool:
        """Release ``key``'s upload lock if ``fence`` still holds it; whether it did."""
        ...


class MemoryMediaIdStore:
    """The default media-id store: this process's memory, bounded, thread-safe.

    Share one instance between clients of the same appid in a process; with several processes
    use a shared store (``RedisMediaIdStore``) so they upload each file once between them.
    """

    def __init__(
        self,
        *,
        max_entries: int = _defaults.MEDIA_CACHE_MAX_ENTRIES,
        clock: Clock = time.monotonic,
    ) -> None:
        self._media: ExpiringMap[tuple[str, str], UploadedMedia] = ExpiringMap(
            max_entries=max_entries, clock=clock
        )
        self._locks: ExpiringMap[tuple[str, str], str] = ExpiringMap(
            max_entries=max_entries, clock=clock
        )

    def __len__(self) -> int:
        return len(self._media)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._media)} media)"

    async def get(self, appid: str, key: str) -> UploadedMedia | None:
        """The media stored for ``key``, or ``None``."""
        return self._media.get((appid, key))

    async def set(self, appid: str, key: str, media: UploadedMedia, ttl: float) -> None:
        """Store ``media`` for ``key`` for ``ttl`` seconds."""
        self._media.set((appid, key), media, ttl)

    async def compare_and_delete(self, appid: str, key: str, media_id: str) -> bool:
        """Forget ``key`` if it holds ``media_id``."""
        entries = self._media
        with entries.lock:
            now = entries.now()
            current = entries.get_locked((appid, key), now)
            if current is None or current.media_id != media_id:
                return False
            entries.pop_locked((appid, key), now)
            return True

    async def try_lock(self, appid: str, key: str, ttl: float) -> str | None:
        """Take ``key``'s upload lock for ``ttl`` seconds; a fence, or ``None`` if it is held."""
        fence = new_fence()
        return fence if self._locks.setdefault((appid, key), fence, ttl) is None else None

    async def unlock(self, appid: str, key: str, fence: str) -> bool:
        """Release ``key``'s upload lock if ``fence`` holds it."""
        locks = self._locks
        with locks.lock:
            now = locks.now()
            if locks.get_locked((appid, key), now) != fence:
                return False
            locks.pop_locked((appid, key), now)
            return True


@attrs.define(eq=False)
class _Flight:
    """One upload in progress in this process; the other tasks wait for its outcome."""

    done: anyio.Event = attrs.field(factory=anyio.Event)
    result: UploadedMedia | None = None
    error: BaseException | None = None


def _seconds(field: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(field, "must be a positive number of seconds", value)
    return float(value)


class MediaIdCache:
    """Uploads each file once and hands out its ``media_id`` while it stays valid.

    One per :class:`~wechat_kf.AsyncWeChat` (shared by its ``with_options`` copies). Uploads
    are single-flight in this process (one flight per file) and, through the store's upload
    lock, across processes: a process that finds another one uploading polls the store for
    its media_id (at most ``lock_wait`` seconds, then uploads itself). What the store answered
    is kept in this process too, so a file sent again costs no store round trip; a media_id
    WeChat refuses is dropped from both (:meth:`forget`).

    Args:
        store: Where uploads are kept (default: a :class:`MemoryMediaIdStore`).
        reuse_margin: Stop handing out a media_id this many seconds before it expires.
        lock_ttl: A store's upload lock expires after this many seconds.
        lock_wait: The longest wait for another process's upload of the same file.
        clock: Unix time in seconds; the wait for another process is measured on it too.
        sleep: How that wait sleeps (``anyio.sleep``). Tests pass a
            :class:`wechat_kf.testing.VirtualClock` as ``clock`` and its ``sleep``.
    """

    def __init__(
        self,
        store: MediaIdStore | None = None,
        *,
        reuse_margin: float = _defaults.MEDIA_REUSE_MARGIN,
        lock_ttl: float = _defaults.MEDIA_LOCK_TTL,
        lock_wait: float = _defaults.MEDIA_LOCK_WAIT,
        clock: Clock = time.time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if reuse_margin < 0 or reuse_margin >= _defaults.MEDIA_LIFETIME:
            raise ValidationError(
                "reuse_margin", "must be >= 0 and below 3 days (259200 s)", reuse_margin
            )
        self.store: MediaIdStore = store if store is not None else MemoryMediaIdStore()
        self.reuse_margin: float = float(reuse_margin)
        self.lock_ttl: float = _seconds("lock_ttl", lock_ttl)
        self.lock_wait: float = _seconds("lock_wait", lock_wait)
        self._clock = clock
        self._sleep = sleep
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._local: ExpiringMap[tuple[str, str], UploadedMedia] = ExpiringMap(
            max_entries=_defaults.MEDIA_CACHE_MAX_ENTRIES, clock=clock
        )
        #: Content hashes of local paths, by (path, size, mtime_ns, inode).
        self.digests: ExpiringMap[tuple[str, int, int, int], str] = ExpiringMap(
            max_entries=_defaults.MEDIA_DIGEST_MEMO
        )
        #: Uploads this cache made (a test's or a dashboard's counter).
        self.uploads: int = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, uploads={self.uploads})"

    def usable(self, media: UploadedMedia | None) -> bool:
        """Whether ``media`` may still be handed out (more than the margin left)."""
        return media is not None and media.remaining(self._clock()) > self.reuse_margin

    async def get_or_upload(self, appid: str, key: str, upload: Upload) -> UploadedMedia:
        """The cached media for ``key``, or the one ``upload()`` makes (once for everyone).

        Tasks asking for a file being uploaded wait for that upload and share its outcome
        (its media, or its error); if its task is cancelled, one of them uploads instead.
        """
        flight_key = (appid, key)
        while True:
            cached = self._local.get(flight_key)
            if cached is not None and self.usable(cached):
                return cached
            flight = self._flights.get(flight_key)
            if flight is not None:
                await flight.done.wait()
                if flight.error is not None:
                    raise flight.error
                if flight.result is not None:
                    return flight.result
                continue  # the uploading task was cancelled: try again
            flight = self._flights[flight_key] = _Flight()
            try:
                flight.result = await self._lead(appid, key, upload)
                return flight.result
            except Exception as exc:
                flight.error = exc
                raise
            finally:
                del self._flights[flight_key]
                flight.done.set()

    async def forget(self, appid: str, key: str, media_id: str) -> None:
        """WeChat refused ``media_id``: drop it, unless another upload replaced it already."""
        local = self._local
        with local.lock:
            now = local.now()
            held = local.get_locked((appid, key), now)
            if held is not None and held.media_id == media_id:
                local.pop_locked((appid, key), now)
        try:
            await self.store.compare_and_delete(appid, key, media_id)
        except StoreError as exc:
            logger.warning("media-id store: could not drop %s: %s", key, exc)

    def _keep(self, appid: str, key: str, media: UploadedMedia) -> UploadedMedia:
        """Remember ``media`` in this process until it leaves the reuse window."""
        ttl = media.remaining(self._clock()) - self.reuse_margin
        if ttl > 0:
            self._local.set((appid, key), media, ttl)
        return media

    async def _read(self, appid: str, key: str) -> UploadedMedia | None:
        try:
            cached = await self.store.get(appid, key)
        except StoreError as exc:
            logger.warning("media-id store unavailable (%s): uploading without it", exc)
            return None
        if cached is None or not self.usable(cached):
            return None
        return self._keep(appid, key, cached)

    async def _lead(self, appid: str, key: str, upload: Upload) -> UploadedMedia:
        """The stored media of ``key``, or upload it under the store's lock (or wait for
        whoever holds that lock)."""
        cached = await self._read(appid, key)
        if cached is not None:
            return cached
        deadline = self._clock() + self.lock_wait
        delay = _defaults.MEDIA_POLL_INITIAL
        while True:
            try:
                fence = await self.store.try_lock(appid, key, self.lock_ttl)
            except StoreError as exc:
                logger.warning("media-id store: no upload lock (%s): uploading without it", exc)
                return await self._upload(appid, key, upload)
            if fence is not None:
                try:
                    cached = await self._read(appid, key)  # uploaded while we took the lock?
                    if cached is not None:
                        return cached
                    return await self._upload(appid, key, upload)
                finally:
                    with anyio.CancelScope(shield=True):
                        try:
                            await self.store.unlock(appid, key, fence)
                        except StoreError as exc:  # it expires on its own
                            logger.warning("media-id store: upload lock not released: %s", exc)
            # Another process is uploading this file: wait for its media_id.
            cached = await self._read(appid, key)
            if cached is not None:
                return cached
            remaining = deadline - self._clock()
            if remaining <= 0:
                logger.warning(
                    "waited %g s for another process's upload of %s: uploading it here",
                    self.lock_wait,
                    key,
                )
                return await self._upload(appid, key, upload)
            await self._sleep(min(delay * random.uniform(0.75, 1.0), remaining))
            delay = min(delay * 2, _defaults.MEDIA_POLL_MAX)

    async def _upload(self, appid: str, key: str, upload: Upload) -> UploadedMedia:
        self.uploads += 1
        media = self._keep(appid, key, await upload())
        ttl = media.remaining(self._clock()) - self.reuse_margin
        if ttl > 0:
            try:
                await self.store.set(appid, key, media, ttl)
            except StoreError as exc:
                logger.warning("media-id store: %s not stored: %s", key, exc)
        return media
