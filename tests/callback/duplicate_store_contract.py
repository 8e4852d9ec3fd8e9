"""A reusable test suite for duplicate stores (``wechat_kf.callback.DuplicateStore``).

Subclass :class:`DuplicateStoreContract` in a test module (the name must start with ``Test``)
and give it a ``store`` fixture; every test uses fresh random keys, so a store on a shared
database needs no cleanup::

    class TestRedisDuplicateStore(DuplicateStoreContract):
        @pytest.fixture
        async def store(self):
            ...

One test sleeps about half a second to watch a key expire.
"""

from __future__ import annotations

import uuid

import anyio
import anyio.lowlevel
import pytest

from wechat_kf.callback import DuplicateStore


def _key() -> str:
    return f"wechat_kf:test:{uuid.uuid4().hex}"


@pytest.mark.anyio
class DuplicateStoreContract:
    """What every :class:`DuplicateStore` must do."""

    async def test_seen_marks_and_reports(self, store: DuplicateStore) -> None:
        key, other = _key(), _key()
        assert await store.seen(key, 60) is False
        assert await store.seen(key, 60) is True
        assert await store.seen(key, 60) is True
        assert await store.seen(other, 60) is False

    async def test_forget_lets_the_next_try_through(self, store: DuplicateStore) -> None:
        key = _key()
        await store.seen(key, 60)
        await store.forget(key)
        await store.forget(_key())  # absent: no error
        assert await store.seen(key, 60) is False
        assert await store.seen(key, 60) is True

    async def test_concurrent_tries_pass_exactly_once(self, store: DuplicateStore) -> None:
        key = _key()
        results: list[bool] = []

        async def one() -> None:
            await anyio.lowlevel.checkpoint()
            results.append(await store.seen(key, 60))

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(one)
        assert sorted(results) == [False] + [True] * 19

    async def test_keys_expire_and_a_retry_does_not_extend_them(
        self, store: DuplicateStore
    ) -> None:
        key = _key()
        assert await store.seen(key, 0.3) is False
        await anyio.sleep(0.15)
        assert await store.seen(key, 0.3) is True  # must not push the expiry to 0.45 s
        await anyio.sleep(0.25)
        assert await store.seen(key, 0.3) is False
