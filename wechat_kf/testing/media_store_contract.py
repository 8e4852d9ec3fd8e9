"""A reusable test suite for media-id stores (``wechat_kf.MediaIdStore``): run it on yours.

Subclass :class:`MediaStoreContract` in one of your test modules (the name must start with
``Test``) and give it a ``store`` fixture; pytest with the anyio plugin runs every contract test
against your store::

    import pytest
    from wechat_kf.testing.media_store_contract import MediaStoreContract


    class TestMyMediaStore(MediaStoreContract):
        @pytest.fixture
        async def store(self):
            store = await MyMediaStore.connect(...)
            yield store
            await store.close()

Each test uses a fresh random appid, so a store on a shared database needs no cleanup. The
suite runs on whatever ``anyio_backend`` your tests use (override that fixture in the subclass
to pin one, e.g. ``"asyncio"`` for a store on an asyncio-only client).

Time: by default the expiry tests wait for real (under a second in all; an entry or a lock that
must expire is waited out twice over, which holds on a loaded machine). A store whose clock you
can replace overrides the ``clock`` fixture with a :class:`~wechat_kf.testing.VirtualClock` and
builds the store on it, as in the other store contracts; then nothing sleeps::

    class TestMyMemoryStore(MediaStoreContract):
        @pytest.fixture
        def clock(self):
            return VirtualClock()

        @pytest.fixture
        def store(self, clock):
            return MyMemoryStore(clock=clock)
"""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import datetime, timedelta, timezone

import anyio
import pytest

from wechat_kf._files import MediaType
from wechat_kf._media_ids import MediaIdCache, MediaIdStore, UploadedMedia
from wechat_kf.testing._clock import Advance, VirtualClock

__all__ = ["Advance", "CountingUpload", "MediaStoreContract"]

_KEY = "image:" + "ab" * 32


def _media(tag: str, kind: MediaType = MediaType.IMAGE) -> UploadedMedia:
    created = datetime.fromtimestamp(int(time.time()), tz=timezone.utc)
    return UploadedMedia.created(f"{tag}-{uuid.uuid4().hex}" + "x" * 20, kind, created)


class CountingUpload:
    """A stand-in for WeChat's upload endpoint: a new media per call, counted, optionally slow.

    ``delay`` is waited on ``clock`` (a :class:`~wechat_kf.testing.VirtualClock`; real time
    when ``None``).
    """

    def __init__(
        self,
        delay: float = 0.0,
        kind: MediaType = MediaType.IMAGE,
        *,
        clock: VirtualClock | None = None,
    ) -> None:
        self.delay: float = delay
        self.kind: MediaType = kind
        self.clock = clock
        self.calls: int = 0
        self._serial = itertools.count(1)

    async def __call__(self) -> UploadedMedia:
        """A new media after ``delay`` seconds."""
        self.calls += 1
        await (anyio.sleep if self.clock is None else self.clock.sleep)(self.delay)
        return _media(f"uploaded{next(self._serial)}", self.kind)


class MediaStoreContract:
    """The media-id store contract as pytest tests. Subclass it and define ``store``."""

    @pytest.fixture
    def store(self) -> MediaIdStore:
        """The store under test: override this fixture in your subclass."""
        raise NotImplementedError("define a `store` fixture in your MediaStoreContract subclass")

    @pytest.fixture
    def clock(self) -> VirtualClock | None:
        """The store's clock: ``None``, real time (override it with a ``VirtualClock``)."""
        return None

    @pytest.fixture
    def advance(self, clock: VirtualClock | None) -> Advance:
        """Moves time forward: ``clock.elapse``, or a real sleep when ``clock`` is ``None``."""
        return anyio.sleep if clock is None else clock.elapse

    @pytest.fixture
    def appid(self) -> str:
        """A fresh appid per test, so tests never see each other's keys."""
        return f"wxcontract{uuid.uuid4().hex[:12]}"

    # ------------------------------------------------------------------ entries

    @pytest.mark.anyio
    async def test_is_a_media_id_store(self, store: MediaIdStore) -> None:
        """The store has every method of the protocol."""
        assert isinstance(store, MediaIdStore)

    @pytest.mark.anyio
    async def test_get_missing_is_none(self, store: MediaIdStore, appid: str) -> None:
        """Nothing stored: ``get`` returns ``None``."""
        assert await store.get(appid, _KEY) is None

    @pytest.mark.anyio
    async def test_set_then_get_round_trips(self, store: MediaIdStore, appid: str) -> None:
        """The media_id, type and both times come back as they went in."""
        media = _media("round", MediaType.THUMB)
        await store.set(appid, _KEY, media, 60)
        got = await store.get(appid, _KEY)
        assert got is not None, "get returned None after set"
        assert got.media_id == media.media_id
        assert got.type is MediaType.THUMB
        assert abs((got.created_at - media.created_at).total_seconds()) < 1e-3
        assert abs((got.expires_at - media.expires_at).total_seconds()) < 1e-3

    @pytest.mark.anyio
    async def test_set_replaces(self, store: MediaIdStore, appid: str) -> None:
        """``set`` replaces whatever was stored."""
        await store.set(appid, _KEY, _media("first"), 60)
        second = _media("second")
        await store.set(appid, _KEY, second, 60)
        got = await store.get(appid, _KEY)
        assert got is not None
        assert got.media_id == second.media_id

    @pytest.mark.anyio
    async def test_entries_expire_after_their_ttl(
        self, store: MediaIdStore, appid: str, advance: Advance
    ) -> None:
        """An entry stored for 0.2 s is gone after it."""
        await store.set(appid, _KEY, _media("short"), 0.2)
        assert await store.get(appid, _KEY) is not None
        await advance(0.45)
        assert await store.get(appid, _KEY) is None

    @pytest.mark.anyio
    async def test_keys_and_appids_are_separate(self, store: MediaIdStore, appid: str) -> None:
        """Each (appid, key) has its own entry."""
        other_key = "voice:" + "cd" * 32
        mine = _media("mine")
        await store.set(appid, _KEY, mine, 60)
        assert await store.get(appid, other_key) is None
        assert await store.get(appid + "b", _KEY) is None
        got = await store.get(appid, _KEY)
        assert got is not None
        assert got.media_id == mine.media_id

    @pytest.mark.anyio
    async def test_compare_and_delete_only_drops_the_named_media(
        self, store: MediaIdStore, appid: str
    ) -> None:
        """A refused media_id is dropped; one stored since (a re-upload) is left alone."""
        old, new = _media("old"), _media("new")
        await store.set(appid, _KEY, new, 60)
        assert await store.compare_and_delete(appid, _KEY, old.media_id) is False
        got = await store.get(appid, _KEY)
        assert got is not None
        assert got.media_id == new.media_id
        assert await store.compare_and_delete(appid, _KEY, new.media_id) is True
        assert await store.get(appid, _KEY) is None
        assert await store.compare_and_delete(appid, _KEY, new.media_id) is False

    # ------------------------------------------------------------------ upload lock

    @pytest.mark.anyio
    async def test_lock_is_exclusive_until_released(self, store: MediaIdStore, appid: str) -> None:
        """One holder at a time; a fence releases only its own lock."""
        fence = await store.try_lock(appid, _KEY, 30)
        assert isinstance(fence, str)
        assert fence
        assert await store.try_lock(appid, _KEY, 30) is None
        assert await store.unlock(appid, _KEY, "not-the-fence") is False
        assert await store.try_lock(appid, _KEY, 30) is None
        assert await store.unlock(appid, _KEY, fence) is True
        assert await store.unlock(appid, _KEY, fence) is False
        again = await store.try_lock(appid, _KEY, 30)
        assert again is not None
        assert again != fence
        assert await store.try_lock(appid, "voice:" + "ef" * 32, 30) is not None

    @pytest.mark.anyio
    async def test_lock_expires_after_its_ttl(
        self, store: MediaIdStore, appid: str, advance: Advance
    ) -> None:
        """A holder that died frees the lock after the TTL; its late unlock changes nothing."""
        dead = await store.try_lock(appid, _KEY, 0.2)
        assert dead is not None
        await advance(0.45)
        alive = await store.try_lock(appid, _KEY, 30)
        assert alive is not None
        assert await store.unlock(appid, _KEY, dead) is False
        assert await store.try_lock(appid, _KEY, 30) is None

    @pytest.mark.anyio
    async def test_only_one_of_many_concurrent_lockers_wins(
        self, store: MediaIdStore, appid: str
    ) -> None:
        """50 concurrent ``try_lock``: exactly one fence."""
        fences: list[str | None] = []

        async def attempt() -> None:
            fences.append(await store.try_lock(appid, _KEY, 30))

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(attempt)
        assert len([f for f in fences if f is not None]) == 1

    # ------------------------------------------------------------------ through the cache

    @pytest.mark.anyio
    async def test_caches_sharing_the_store_upload_once(
        self, store: MediaIdStore, appid: str, clock: VirtualClock | None, advance: Advance
    ) -> None:
        """Four caches on the store (four processes) x 50 tasks asking at once: one upload."""
        upload = CountingUpload(delay=0.1, clock=clock)
        timing = {} if clock is None else {"clock": clock, "sleep": clock.sleep}
        caches = [MediaIdCache(store, **timing) for _ in range(4)]  # type: ignore[arg-type]
        seen: list[str] = []

        async def ask(cache: MediaIdCache) -> None:
            seen.append((await cache.get_or_upload(appid, _KEY, upload)).media_id)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                for cache in caches:
                    tg.start_soon(ask, cache)
            while len(seen) < 200:
                await advance(0.05)
        assert upload.calls == 1
        assert len(set(seen)) == 1

    @pytest.mark.anyio
    async def test_a_refused_media_is_uploaded_again_once(
        self, store: MediaIdStore, appid: str
    ) -> None:
        """After ``forget`` of the refused id, 20 callers get one new upload between them."""
        upload = CountingUpload()
        cache, other = MediaIdCache(store), MediaIdCache(store)
        first = await cache.get_or_upload(appid, _KEY, upload)
        seen: set[str] = set()

        async def refused(by: MediaIdCache) -> None:
            await by.forget(appid, _KEY, first.media_id)
            seen.add((await by.get_or_upload(appid, _KEY, upload)).media_id)

        async with anyio.create_task_group() as tg:
            for index in range(20):
                tg.start_soon(refused, cache if index % 2 else other)
        assert upload.calls == 2
        assert len(seen) == 1
        assert first.media_id not in seen

    @pytest.mark.anyio
    async def test_a_media_near_its_expiry_is_not_handed_out(
        self, store: MediaIdStore, appid: str
    ) -> None:
        """An entry inside the reuse margin counts as missing: a new upload replaces it."""
        old = UploadedMedia(
            media_id="old-" + "x" * 40,
            type=MediaType.IMAGE,
            created_at=datetime.now(timezone.utc) - timedelta(days=3),
            expires_at=datetime.now(timezone.utc) + timedelta(minutes=10),
        )
        await store.set(appid, _KEY, old, 600)
        upload = CountingUpload()
        got = await MediaIdCache(store).get_or_upload(appid, _KEY, upload)
        assert upload.calls == 1
        assert got.media_id != old.media_id
