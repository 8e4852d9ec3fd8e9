"""MediaIdCache and the memory media-id store on virtual time: every boundary that decides reuse.

test_media_send.py drives the cache through ``wx.message.send`` against the fake WeChat; the
store contract (test_media_store_contract.py) runs the stores. Here the cache runs on its own,
on a :class:`~wechat_kf.testing.VirtualClock`, with an upload that stands in for WeChat's and a
store that records what the cache asks of it: the reuse margin at exactly the limit, the TTLs it
stores, the upload lock, the wait for another process (its back-off and its deadline), and what
it does, and logs, when the store is down.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from wechat_kf import (
    MediaIdCache,
    MediaStoreError,
    MediaType,
    MediaTypeError,
    MemoryMediaIdStore,
    UploadedMedia,
    ValidationError,
    _defaults,
)
from wechat_kf._media_ids import media_from_fields
from wechat_kf.testing import VirtualClock

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.0
LIFETIME = _defaults.MEDIA_LIFETIME
MARGIN = _defaults.MEDIA_REUSE_MARGIN
APPID = "wxcache"
KEY = "image:" + "ab" * 32


def media_at(created: float, media_id: str = "m" * 30) -> UploadedMedia:
    return UploadedMedia.created(
        media_id, MediaType.IMAGE, datetime.fromtimestamp(created, tz=timezone.utc)
    )


def media_left(clock: VirtualClock, left: float, media_id: str = "m" * 30) -> UploadedMedia:
    """A media with ``left`` seconds of its 3 days to go at ``clock``'s time."""
    return media_at(clock() - (LIFETIME - left), media_id)


class Uploads:
    """WeChat's upload endpoint on ``clock``: a new media per call, ``left`` seconds to live."""

    def __init__(self, clock: VirtualClock, *, left: float = LIFETIME, delay: float = 0.0) -> None:
        self.clock = clock
        self.left = left
        self.delay = delay
        #: The clock's time at each call.
        self.times: list[float] = []

    @property
    def calls(self) -> int:
        return len(self.times)

    async def __call__(self) -> UploadedMedia:
        self.times.append(self.clock())
        if self.delay:
            await self.clock.sleep(self.delay)
        return media_left(self.clock, self.left, f"uploaded{self.calls}-" + "x" * 20)


class RecordingStore:
    """A memory store on ``clock`` that records each call, waits on its backend as a real one
    does (a checkpoint), and fails the operations named in ``down``."""

    def __init__(self, clock: VirtualClock, down: tuple[str, ...] = ()) -> None:
        self.inner = MemoryMediaIdStore(clock=clock)
        self.down = down
        self.calls: list[tuple[Any, ...]] = []

    async def _call(self, name: str, *args: Any) -> Any:
        self.calls.append((name, *args))
        await anyio.lowlevel.checkpoint()
        if name in self.down:
            raise MediaStoreError(f"{name} down")
        return await getattr(self.inner, name)(*args)

    @property
    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    async def get(self, appid: str, key: str) -> UploadedMedia | None:
        return await self._call("get", appid, key)  # type: ignore[no-any-return]

    async def set(self, appid: str, key: str, media: UploadedMedia, ttl: float) -> None:
        await self._call("set", appid, key, media, ttl)

    async def compare_and_delete(self, appid: str, key: str, media_id: str) -> bool:
        return await self._call("compare_and_delete", appid, key, media_id)  # type: ignore[no-any-return]

    async def try_lock(self, appid: str, key: str, ttl: float) -> str | None:
        return await self._call("try_lock", appid, key, ttl)  # type: ignore[no-any-return]

    async def unlock(self, appid: str, key: str, fence: str) -> bool:
        return await self._call("unlock", appid, key, fence)  # type: ignore[no-any-return]


def positive_sleep(clock: VirtualClock) -> Callable[[float], Awaitable[None]]:
    """``clock.sleep``, refusing a wait of zero or less (a poll loop that would spin)."""

    async def sleep(seconds: float) -> None:
        assert seconds > 0, f"asked to sleep {seconds} s"
        await clock.sleep(seconds)

    return sleep


def cache_on(clock: VirtualClock, store: Any = None, **options: Any) -> MediaIdCache:
    if store is None:
        store = MemoryMediaIdStore(clock=clock)
    return MediaIdCache(store, clock=clock, sleep=positive_sleep(clock), **options)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ---------------------------------------------------------------------- the media itself


def test_a_media_lives_three_days_and_counts_down() -> None:
    media = media_at(T0)
    assert media.created_at == datetime.fromtimestamp(T0, tz=timezone.utc)
    assert media.expires_at - media.created_at == timedelta(days=3)
    assert media.remaining(T0 + 10) == LIFETIME - 10
    assert media.remaining(T0 + LIFETIME + 5) == -5


def test_remaining_defaults_to_the_wall_clock() -> None:
    media = UploadedMedia.created("m" * 30, MediaType.IMAGE, datetime.now(timezone.utc))
    assert LIFETIME - 60 < media.remaining() <= LIFETIME


def test_a_store_s_plain_fields_make_an_aware_media() -> None:
    media = media_from_fields("mid", "voice", T0, T0 + 5.5)
    assert media == UploadedMedia(
        media_id="mid",
        type=MediaType.VOICE,
        created_at=datetime.fromtimestamp(T0, tz=timezone.utc),
        expires_at=datetime.fromtimestamp(T0 + 5.5, tz=timezone.utc),
    )
    assert media.created_at.tzinfo is media.expires_at.tzinfo is timezone.utc


# ---------------------------------------------------------------------- the memory store


async def test_the_memory_store_is_bounded_and_says_how_much_it_holds() -> None:
    clock = VirtualClock(start=T0)
    store = MemoryMediaIdStore(max_entries=2, clock=clock)
    assert (len(store), repr(store)) == (0, "MemoryMediaIdStore(0 media)")
    for n in range(3):
        await store.set(APPID, f"image:{n}", media_at(T0, f"m{n}"), 60)
    assert (len(store), repr(store)) == (2, "MemoryMediaIdStore(2 media)")
    assert await store.get(APPID, "image:0") is None  # the oldest went first
    assert [m.media_id for m in [await store.get(APPID, f"image:{n}") for n in (1, 2)] if m] == [
        "m1",
        "m2",
    ]
    clock.advance(60)
    assert len(store) == 0


async def test_a_memory_lock_and_entry_end_exactly_at_their_ttl() -> None:
    clock = VirtualClock(start=T0)
    store = MemoryMediaIdStore(clock=clock)
    await store.set(APPID, KEY, media_at(T0), 10)
    fence = await store.try_lock(APPID, KEY, 10)
    assert fence is not None
    clock.advance(9.5)
    assert await store.get(APPID, KEY) is not None
    assert await store.try_lock(APPID, KEY, 10) is None
    clock.advance(0.5)
    assert await store.get(APPID, KEY) is None
    assert await store.compare_and_delete(APPID, KEY, "m" * 30) is False
    assert await store.unlock(APPID, KEY, fence) is False
    assert await store.try_lock(APPID, KEY, 10) is not None


# ---------------------------------------------------------------------- settings


def test_the_cache_keeps_its_defaults() -> None:
    cache = MediaIdCache()
    assert isinstance(cache.store, MemoryMediaIdStore)
    assert (cache.reuse_margin, cache.lock_ttl, cache.lock_wait) == (3600.0, 60.0, 90.0)
    assert cache.uploads == 0
    assert repr(cache) == "MediaIdCache(store=MemoryMediaIdStore(0 media), uploads=0)"


def test_the_digest_memo_is_bounded() -> None:
    digests = MediaIdCache().digests
    for n in range(_defaults.MEDIA_DIGEST_MEMO + 1):
        digests.set((f"/f{n}", 1, 1, n), f"d{n}", 60)
    assert len(digests) == _defaults.MEDIA_DIGEST_MEMO
    assert digests.get(("/f0", 1, 1, 0)) is None
    assert digests.get(("/f1", 1, 1, 1)) == "d1"


@pytest.mark.parametrize("value", [0.0, 0.5, 3600, LIFETIME - 0.5])
def test_a_reuse_margin_from_zero_to_below_three_days_is_kept(value: float) -> None:
    cache = MediaIdCache(reuse_margin=value)
    assert cache.reuse_margin == value
    assert isinstance(cache.reuse_margin, float)


@pytest.mark.parametrize("value", [-0.001, -1, LIFETIME, LIFETIME + 1])
def test_a_reuse_margin_outside_three_days_is_refused(value: float) -> None:
    with pytest.raises(ValidationError) as info:
        MediaIdCache(reuse_margin=value)
    assert (info.value.field, info.value.limit, info.value.value) == (
        "reuse_margin",
        "must be >= 0 and below 3 days (259200 s)",
        value,
    )


@pytest.mark.parametrize("field", ["lock_ttl", "lock_wait"])
@pytest.mark.parametrize("value", [0, -1, 0.0, True, False, "5", None])
def test_lock_times_must_be_positive_seconds(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        MediaIdCache(**{field: value})
    assert (info.value.field, info.value.limit, info.value.value) == (
        field,
        "must be a positive number of seconds",
        value,
    )
    assert str(info.value) == f"{field}: must be a positive number of seconds"


@pytest.mark.parametrize("field", ["lock_ttl", "lock_wait"])
@pytest.mark.parametrize("value", [0.001, 0.5, 1, 7])
def test_lock_times_are_kept_as_float_seconds(field: str, value: Any) -> None:
    kept = getattr(MediaIdCache(**{field: value}), field)
    assert kept == value
    assert isinstance(kept, float)


# ---------------------------------------------------------------------- reuse


def test_a_media_is_usable_while_more_than_the_margin_is_left() -> None:
    clock = VirtualClock(start=T0)
    cache = cache_on(clock)
    assert cache.usable(media_left(clock, MARGIN + 0.5))
    assert not cache.usable(media_left(clock, MARGIN))
    assert not cache.usable(None)
    assert cache_on(clock, reuse_margin=0).usable(media_left(clock, 0.5))


async def test_an_upload_is_stored_for_its_reuse_window_under_the_lock() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    upload = Uploads(clock)
    cache = cache_on(clock, store, lock_ttl=7)
    got = await cache.get_or_upload(APPID, KEY, upload)
    assert got.media_id == "uploaded1-" + "x" * 20
    assert store.names == ["get", "try_lock", "get", "set", "unlock"]
    assert store.calls[:4] == [
        ("get", APPID, KEY),
        ("try_lock", APPID, KEY, 7.0),
        ("get", APPID, KEY),
        ("set", APPID, KEY, got, LIFETIME - MARGIN),
    ]
    assert store.calls[4][:3] == ("unlock", APPID, KEY)
    assert isinstance(store.calls[4][3], str)
    assert await store.inner.try_lock(APPID, KEY, 7) is not None  # released
    assert await store.inner.get(APPID, KEY) == got
    # Asked again: kept in this process, no store round trip, no upload.
    assert await cache.get_or_upload(APPID, KEY, upload) == got
    assert len(store.calls) == 5
    assert (upload.calls, cache.uploads) == (1, 1)


async def test_each_upload_is_counted() -> None:
    clock = VirtualClock(start=T0)
    upload = Uploads(clock)
    cache = cache_on(clock)
    for n in range(3):
        await cache.get_or_upload(APPID, f"image:{n}", upload)
    assert (upload.calls, cache.uploads) == (3, 3)
    assert repr(cache) == "MediaIdCache(store=MemoryMediaIdStore(3 media), uploads=3)"


async def test_what_another_process_stored_costs_one_read_then_stays_in_process() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    theirs = media_left(clock, MARGIN + 0.5, "theirs-" + "x" * 20)
    await store.inner.set(APPID, KEY, theirs, 10)
    cache = cache_on(clock, store)
    upload = Uploads(clock)
    assert await cache.get_or_upload(APPID, KEY, upload) == theirs
    assert store.calls == [("get", APPID, KEY)]
    assert await cache.get_or_upload(APPID, KEY, upload) == theirs
    assert store.calls == [("get", APPID, KEY)]
    assert upload.calls == 0
    clock.advance(0.5)  # now exactly the margin is left: not handed out again
    fresh = await cache.get_or_upload(APPID, KEY, upload)
    assert fresh.media_id != theirs.media_id
    assert upload.calls == 1


async def test_a_stored_media_with_only_the_margin_left_is_uploaded_again() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    await store.inner.set(APPID, KEY, media_left(clock, MARGIN, "old-" + "x" * 20), 10)
    upload = Uploads(clock)
    got = await cache_on(clock, store).get_or_upload(APPID, KEY, upload)
    assert got.media_id.startswith("uploaded1")
    assert store.names == ["get", "try_lock", "get", "set", "unlock"]


async def test_an_upload_with_just_over_the_margin_left_is_stored_and_kept() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    upload = Uploads(clock, left=MARGIN + 0.5)
    cache = cache_on(clock, store)
    got = await cache.get_or_upload(APPID, KEY, upload)
    assert store.calls[3] == ("set", APPID, KEY, got, 0.5)
    assert await cache.get_or_upload(APPID, KEY, upload) == got
    assert len(store.calls) == 5  # kept in this process for its last half second
    clock.advance(0.5)
    assert (await cache.get_or_upload(APPID, KEY, upload)).media_id.startswith("uploaded2")


async def test_an_upload_with_only_the_margin_left_is_handed_out_once_and_not_stored() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    upload = Uploads(clock, left=MARGIN)
    cache = cache_on(clock, store)
    first = await cache.get_or_upload(APPID, KEY, upload)
    assert first.media_id.startswith("uploaded1")
    assert "set" not in store.names
    second = await cache.get_or_upload(APPID, KEY, upload)
    assert second.media_id.startswith("uploaded2")
    assert upload.calls == 2


async def test_the_reuse_margin_is_the_cache_s_own() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    upload = Uploads(clock)
    got = await cache_on(clock, store, reuse_margin=100).get_or_upload(APPID, KEY, upload)
    assert store.calls[3] == ("set", APPID, KEY, got, LIFETIME - 100)


# ---------------------------------------------------------------------- forget


async def test_forget_drops_only_the_refused_media_id() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    upload = Uploads(clock)
    cache = cache_on(clock, store)
    first = await cache.get_or_upload(APPID, KEY, upload)
    await cache.forget(APPID, KEY, "someone-else-s-" + "x" * 20)  # replaced meanwhile: kept
    assert await cache.get_or_upload(APPID, KEY, upload) == first
    assert await store.inner.get(APPID, KEY) == first
    await cache.forget(APPID, KEY, first.media_id)
    assert store.calls[-1] == ("compare_and_delete", APPID, KEY, first.media_id)
    assert await store.inner.get(APPID, KEY) is None
    second = await cache.get_or_upload(APPID, KEY, upload)
    assert second.media_id.startswith("uploaded2")
    assert await store.inner.get(APPID, KEY) == second


# ---------------------------------------------------------------------- another process uploading


async def test_waiting_for_another_process_backs_off_then_uploads_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wechat_kf.media")
    clock = VirtualClock(start=T0)
    store = MemoryMediaIdStore(clock=clock)
    assert await store.try_lock(APPID, KEY, 3600) is not None  # another process, stuck
    upload = Uploads(clock)
    cache = cache_on(clock, store, lock_wait=2)
    got: list[UploadedMedia] = []

    async def ask() -> None:
        got.append(await cache.get_or_upload(APPID, KEY, upload))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await clock.elapse(5)
        tg.cancel_scope.cancel()
    assert upload.times == [T0 + 2]  # waited exactly lock_wait, then uploaded itself
    assert warnings(caplog) == [
        f"waited 2 s for another process's upload of {KEY}: uploading it here"
    ]
    (media,) = got
    assert await store.get(APPID, KEY) == media  # stored for the others
    assert await cache.get_or_upload(APPID, KEY, upload) == media
    delays = clock.requested
    assert sum(delays) == pytest.approx(2)
    for n, delay in enumerate(delays[:-1]):
        base = min(_defaults.MEDIA_POLL_INITIAL * 2**n, _defaults.MEDIA_POLL_MAX)
        assert 0.75 * base <= delay <= base, (n, delays)
    assert len(delays) >= 7  # 0.02 doubling to 0.5 and more: the cap was reached


async def test_a_waiting_process_takes_the_media_the_other_one_stored() -> None:
    clock = VirtualClock(start=T0)
    store = MemoryMediaIdStore(clock=clock)
    assert await store.try_lock(APPID, KEY, 3600) is not None  # the other process
    upload = Uploads(clock)
    cache = cache_on(clock, store)
    theirs = media_at(T0, "theirs-" + "x" * 20)
    got: list[UploadedMedia] = []

    async def ask() -> None:
        got.append(await cache.get_or_upload(APPID, KEY, upload))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await clock.elapse(1)
        await store.set(APPID, KEY, theirs, 3600)
        await clock.elapse(1)  # the next poll (at most 0.5 s away) finds it
        tg.cancel_scope.cancel()
    assert got == [theirs]
    assert upload.calls == 0
    assert await store.try_lock(APPID, KEY, 10) is None  # never took (or freed) their lock


async def test_an_upload_cancelled_under_the_lock_releases_it() -> None:
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock)
    cache = cache_on(clock, store)
    upload = Uploads(clock, delay=30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cache.get_or_upload, APPID, KEY, upload)
        await clock.sleeping(1)  # uploading, holding the lock
        assert await store.inner.try_lock(APPID, KEY, 10) is None
        tg.cancel_scope.cancel()
    assert store.names[-1] == "unlock"
    assert await store.inner.try_lock(APPID, KEY, 10) is not None, "a cancelled upload kept it"


# ---------------------------------------------------------------------- the store down


@pytest.mark.parametrize(
    ("down", "logged"),
    [
        (
            "get",
            ["media-id store unavailable (get down): uploading without it"] * 2,
        ),
        ("try_lock", ["media-id store: no upload lock (try_lock down): uploading without it"]),
        ("set", [f"media-id store: {KEY} not stored: set down"]),
        ("unlock", ["media-id store: upload lock not released: unlock down"]),
    ],
)
async def test_a_store_outage_uploads_without_it_and_says_so(
    caplog: pytest.LogCaptureFixture, down: str, logged: list[str]
) -> None:
    caplog.set_level(logging.WARNING, logger="wechat_kf.media")
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock, down=(down,))
    upload = Uploads(clock)
    cache = cache_on(clock, store)
    got = await cache.get_or_upload(APPID, KEY, upload)
    assert warnings(caplog) == logged
    if down not in ("get", "set"):
        assert await store.inner.get(APPID, KEY) == got  # stored under the file's key
    # Kept in this process meanwhile: asked again, no upload and no store round trip.
    calls = len(store.calls)
    assert await cache.get_or_upload(APPID, KEY, upload) == got
    assert (upload.calls, len(store.calls)) == (1, calls)


async def test_a_store_outage_while_forgetting_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wechat_kf.media")
    clock = VirtualClock(start=T0)
    store = RecordingStore(clock, down=("compare_and_delete",))
    upload = Uploads(clock)
    cache = cache_on(clock, store)
    first = await cache.get_or_upload(APPID, KEY, upload)
    await cache.forget(APPID, KEY, first.media_id)
    assert warnings(caplog) == [f"media-id store: could not drop {KEY}: compare_and_delete down"]
    # Dropped in this process all the same; the store still holds it (it could not drop it).
    assert await cache.get_or_upload(APPID, KEY, upload) == first
    assert store.names[-1] == "get"


# ---------------------------------------------------------------------- in-process flights


async def test_the_cache_shares_an_upload_failure_with_its_waiters() -> None:
    cache = MediaIdCache()
    calls = 0
    release = anyio.Event()

    async def failing() -> UploadedMedia:
        nonlocal calls
        calls += 1
        await release.wait()
        raise MediaTypeError(40005, "invalid file type")

    errors: list[BaseException] = []

    async def ask() -> None:
        try:
            await cache.get_or_upload("wx1", "image:x", failing)
        except MediaTypeError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert calls == 1
    assert len(errors) == 10


async def test_a_cancelled_upload_lets_a_waiter_upload() -> None:
    cache = MediaIdCache()
    calls = 0

    async def upload() -> UploadedMedia:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep_forever()
        return UploadedMedia.created("m2" * 20, MediaType.IMAGE, datetime.now(timezone.utc))

    results: list[str] = []
    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            await cache.get_or_upload("wx1", "image:y", upload)

    async def wait() -> None:
        results.append((await cache.get_or_upload("wx1", "image:y", upload)).media_id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lead)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        leader.cancel()
    assert results == ["m2" * 20]
    assert calls == 2
