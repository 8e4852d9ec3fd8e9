"""A reusable test suite for duplicate stores (``wechat_kf.callback.DuplicateStore``): run yours.

Subclass :class:`DuplicateStoreContract` in one of your test modules (the name must start with
``Test``) and give it a ``store`` fixture; pytest with the anyio plugin (``pip install anyio
pytest``) runs every contract test against your store::

    import pytest
    from wechat_kf.testing.duplicate_store_contract import DuplicateStoreContract


    class TestMyDuplicateStore(DuplicateStoreContract):
        @pytest.fixture
        async def store(self):
            store = await MyDuplicateStore.connect(...)
            yield store
            await store.close()

Every test uses fresh random keys, so a store on a shared database needs no cleanup. The suite
runs on whatever ``anyio_backend`` your tests use (override that fixture in the subclass to pin
one, for example ``"asyncio"`` for a store built on an asyncio-only client).

Time: the expiry tests move time with the ``advance`` fixture. By default it really sleeps
(about 2.5 s in all, with TTLs of a second or more and margins of a fifth of a second and up,
which hold on a loaded machine); a store whose clock you can replace overrides the ``clock``
fixture with a :class:`~wechat_kf.testing.VirtualClock` and builds the store on it, and then
nothing sleeps (as in the token store contract)::

    class TestMyMemoryStore(DuplicateStoreContract):
        @pytest.fixture
        def clock(self):
            return VirtualClock()

        @pytest.fixture
        def store(self, clock):
            return MyMemoryStore(clock=clock)

(Overriding ``advance`` itself, to move a clock of your own, works too.)
"""

from __future__ import annotations

import uuid

import anyio
import anyio.lowlevel
import pytest

from wechat_kf.callback import DuplicateEntry, DuplicateStore
from wechat_kf.testing._clock import Advance, VirtualClock

__all__ = ["REPLIES", "Advance", "DuplicateStoreContract"]

#: Replies as the endpoint stores them: success, XML with multi-byte text, CDATA split around
#: ``]]>``, newlines, and an encrypted reply's size.
REPLIES = [
    b"success",
    "<xml><ToUserName><![CDATA[oUser]]></ToUserName><Content><![CDATA[您好 😀 a]]]]><![CDATA[>b"
    "\r\n\t]]></Content></xml>".encode(),
    b"<xml><Encrypt><![CDATA[" + b"QUJD+/=" * 600 + b"]]></Encrypt></xml>",
]


def _key() -> str:
    return f"callback:contract:{uuid.uuid4().hex}"


@pytest.mark.anyio
class DuplicateStoreContract:
    """The duplicate-store contract as pytest tests. Subclass it and define a ``store`` fixture."""

    @pytest.fixture
    def store(self) -> DuplicateStore:
        """The store under test: override this fixture in your subclass."""
        raise NotImplementedError(
            "define a `store` fixture in your DuplicateStoreContract subclass"
        )

    @pytest.fixture
    def clock(self) -> VirtualClock | None:
        """The store's clock: ``None``, real time (override it with a ``VirtualClock``)."""
        return None

    @pytest.fixture
    def advance(self, clock: VirtualClock | None) -> Advance:
        """Moves time forward: ``clock.elapse``, or a real sleep when ``clock`` is ``None``."""
        return anyio.sleep if clock is None else clock.elapse

    # ------------------------------------------------------------------ states

    async def test_claim_then_in_progress(self, store: DuplicateStore) -> None:
        """The first claim wins (``None``); later ones see the key in progress."""
        key, other = _key(), _key()
        assert await store.claim(key, 60) is None
        assert await store.claim(key, 60) == DuplicateEntry("in_progress")
        assert await store.claim(key, 60) == DuplicateEntry("in_progress")
        assert await store.claim(other, 60) is None, "keys must be independent"

    @pytest.mark.parametrize("reply", REPLIES, ids=["success", "xml", "encrypted"])
    async def test_mark_done_keeps_the_exact_reply(
        self, store: DuplicateStore, reply: bytes
    ) -> None:
        """A handled key gives back the exact reply bytes, to every retry."""
        key = _key()
        assert await store.claim(key, 60) is None
        await store.mark_done(key, reply, 60)
        for _ in range(2):  # a retry does not turn it back
            entry = await store.claim(key, 60)
            assert entry is not None, "a handled key was claimed again"
            assert entry.state == "done"
            assert entry.reply == reply, "the stored reply changed"
            assert type(entry.reply) is bytes

    async def test_mark_done_without_a_live_claim_still_marks(self, store: DuplicateStore) -> None:
        """The claim lapsed while ``on_message`` ran: the push was still handled."""
        key = _key()
        await store.mark_done(key, b"success", 60)
        assert await store.claim(key, 60) == DuplicateEntry("done", b"success")

    async def test_mark_done_replaces_an_earlier_reply(self, store: DuplicateStore) -> None:
        """Two tries that both ran (a lapsed claim): the later reply wins."""
        key = _key()
        await store.mark_done(key, REPLIES[1], 60)
        await store.mark_done(key, b"success", 60)
        assert await store.claim(key, 60) == DuplicateEntry("done", b"success")

    async def test_forget_removes_in_progress_and_done_keys(self, store: DuplicateStore) -> None:
        """``forget`` lets the next claim win, in either state; absent keys are no error."""
        claimed, done = _key(), _key()
        await store.claim(claimed, 60)
        await store.claim(done, 60)
        await store.mark_done(done, b"success", 60)
        await store.forget(claimed)
        await store.forget(done)
        await store.forget(_key())
        assert await store.claim(claimed, 60) is None
        assert await store.claim(done, 60) is None
        assert await store.claim(claimed, 60) == DuplicateEntry("in_progress")

    async def test_concurrent_claims_pass_exactly_once(self, store: DuplicateStore) -> None:
        """Of 20 concurrent claims of one key, exactly one wins."""
        key = _key()
        results: list[DuplicateEntry | None] = []

        async def one() -> None:
            await anyio.lowlevel.checkpoint()
            results.append(await store.claim(key, 60))

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(one)
        assert results.count(None) == 1
        assert results.count(DuplicateEntry("in_progress")) == 19

    # ------------------------------------------------------------------ expiry

    async def test_a_claim_expires_and_a_retry_does_not_extend_it(
        self, store: DuplicateStore, advance: Advance
    ) -> None:
        """The in-progress TTL bounds how long a crashed worker blocks a push."""
        key = _key()
        assert await store.claim(key, 1.0) is None
        await advance(0.3)
        assert await store.claim(key, 1.0) == DuplicateEntry("in_progress")  # not to 1.3 s
        await advance(0.9)
        assert await store.claim(key, 1.0) is None, "the claim outlived its TTL"

    async def test_mark_done_replaces_the_claims_expiry(
        self, store: DuplicateStore, advance: Advance
    ) -> None:
        """The done TTL counts from ``mark_done``, longer or shorter than the claim's."""
        longer, shorter = _key(), _key()
        await store.claim(longer, 1.0)
        await store.mark_done(longer, b"success", 60)  # outlives the 1 s claim
        await store.claim(shorter, 60)
        await store.mark_done(shorter, b"success", 1.0)  # expires before the 60 s claim would
        assert await store.claim(longer, 0.2) == DuplicateEntry("done", b"success")
        await advance(1.3)
        assert await store.claim(longer, 60) == DuplicateEntry("done", b"success"), (
            "a retry's claim TTL shortened a done key"
        )
        assert await store.claim(shorter, 60) is None, "a done key outlived its TTL"
