"""A reusable test suite for duplicate stores (``wechat_kf.callback.DuplicateStore``).

Subclass :class:`DuplicateStoreContract` in a test module (the name must start with ``Test``)
and give it a ``store`` fixture; every test uses fresh random keys, so a store on a shared
database needs no cleanup::

    class TestRedisDuplicateStore(DuplicateStoreContract):
        @pytest.fixture
        async def store(self):
            ...

A few tests sleep (about a second in all) to watch keys expire.
"""

from __future__ import annotations

import uuid

import anyio
import anyio.lowlevel
import pytest

from wechat_kf.callback import DuplicateState, DuplicateStore


def _key() -> str:
    return f"wechat_kf:test:{uuid.uuid4().hex}"


@pytest.mark.anyio
class DuplicateStoreContract:
    """What every :class:`DuplicateStore` must do."""

    async def test_seen_claims_then_reports_in_progress(self, store: DuplicateStore) -> None:
        key, other = _key(), _key()
        assert await store.seen(key, 60) is None
        assert await store.seen(key, 60) == "in_progress"
        assert await store.seen(key, 60) == "in_progress"
        assert await store.seen(other, 60) is None

    async def test_mark_done_makes_retries_report_done(self, store: DuplicateStore) -> None:
        key = _key()
        assert await store.seen(key, 60) is None
        await store.mark_done(key, 60)
        assert await store.seen(key, 60) == "done"
        assert await store.seen(key, 60) == "done"  # a retry does not turn it back

    async def test_mark_done_without_a_live_claim_still_marks(self, store: DuplicateStore) -> None:
        # The claim lapsed while on_message ran: the push was still handled.
        key = _key()
        await store.mark_done(key, 60)
        assert await store.seen(key, 60) == "done"

    async def test_forget_releases_in_progress_and_done_keys(self, store: DuplicateStore) -> None:
        claimed, done = _key(), _key()
        await store.seen(claimed, 60)
        await store.seen(done, 60)
        await store.mark_done(done, 60)
        await store.forget(claimed)
        await store.forget(done)
        await store.forget(_key())  # absent: no error
        assert await store.seen(claimed, 60) is None
        assert await store.seen(done, 60) is None
        assert await store.seen(claimed, 60) == "in_progress"

    async def test_concurrent_claims_pass_exactly_once(self, store: DuplicateStore) -> None:
        key = _key()
        results: list[DuplicateState | None] = []

        async def one() -> None:
            await anyio.lowlevel.checkpoint()
            results.append(await store.seen(key, 60))

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(one)
        assert results.count(None) == 1
        assert results.count("in_progress") == 19

    async def test_a_claim_expires_and_a_retry_does_not_extend_it(
        self, store: DuplicateStore
    ) -> None:
        # The in-progress ttl bounds how long a crashed worker blocks a push.
        key = _key()
        assert await store.seen(key, 0.3) is None
        await anyio.sleep(0.15)
        assert await store.seen(key, 0.3) == "in_progress"  # must not push expiry to 0.45 s
        await anyio.sleep(0.25)
        assert await store.seen(key, 0.3) is None

    async def test_mark_done_replaces_the_claims_expiry(self, store: DuplicateStore) -> None:
        longer, shorter = _key(), _key()
        await store.seen(longer, 0.2)
        await store.mark_done(longer, 60)  # outlives the 0.2 s claim
        await store.seen(shorter, 60)
        await store.mark_done(shorter, 0.2)  # expires before the 60 s claim would
        assert await store.seen(longer, 0.05) == "done"  # a retry must not shorten it
        await anyio.sleep(0.3)
        assert await store.seen(longer, 60) == "done"
        assert await store.seen(shorter, 60) is None
