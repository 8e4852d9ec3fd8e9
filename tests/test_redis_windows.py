"""RedisWindowStore against a real redis-server: layout, expiry, streaming, outages.

The store contract itself runs in ``test_window_store_contract.py``; the many-process proof in
``test_multiprocess_windows.py``. asyncio only (redis.asyncio), except the trio check.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio

from tests.redis_server import RedisServer, running_redis
from tests.testing.fake_http import T0, FrozenClock
from wechat_kf import AsyncWeChat, RedisWindowStore, SendStatus, Text, WindowStoreError
from wechat_kf._window_store import StoredWindow
from wechat_kf.testing import FakeWeChat

pytestmark = pytest.mark.anyio

MEMORY = 3600.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisWindowStore]:
    async with RedisWindowStore.from_url(redis_server.url, prefix=prefix) as store:
        yield store


def message(at: float, *, left: int = 5, ref: str = "") -> StoredWindow:
    return StoredWindow(window="message", opened_at=at, until=at + 48 * 3600, left=left, ref=ref)


def test_public_name_and_import_without_redis() -> None:
    import wechat_kf

    assert wechat_kf.RedisWindowStore is RedisWindowStore
    assert "RedisWindowStore" in wechat_kf.__all__
    # Without redis-py, `import wechat_kf` still works; building the store says what to install.
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "import wechat_kf\n"
        "for build in (lambda: wechat_kf.RedisWindowStore(object()),\n"
        "              lambda: wechat_kf.RedisWindowStore.from_url('redis://x')):\n"
        "    try:\n"
        "        build()\n"
        "    except ImportError as exc:\n"
        "        print('ImportError:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert all("pip install 'wechat_kf[redis]'" in line for line in lines)


async def test_key_layout_and_expiry(store: RedisWindowStore, prefix: str) -> None:
    now = float(T0)
    await store.open("wxlayout", "o_abc", message(now, ref="m1"), memory=MEMORY)
    raw = store.redis
    key = store.record_key("wxlayout", "o_abc")
    assert key == f"{prefix}{{wxlayout}}:window:o_abc"
    assert store.ids_key("wxlayout") == f"{prefix}{{wxlayout}}:windows:ids"
    assert store.expiry_key("wxlayout") == f"{prefix}{{wxlayout}}:windows:expiry"
    keep = now + 48 * 3600 + MEMORY
    fields = await raw.hgetall(key)
    assert float(fields.pop(b"keep")) == keep
    assert fields == {
        b"w:message:at": repr(now).encode(),
        b"w:message:till": repr(now + 48 * 3600).encode(),
        b"w:message:left": b"5",
        b"w:message:ref": b"m1",
    }
    # The key expires with the record: its TTL is the record's lifetime from the writer's now.
    assert (keep - now) * 1000 - 5000 < await raw.pttl(key) <= (keep - now) * 1000
    assert await raw.zrange(store.ids_key("wxlayout"), 0, -1, withscores=True) == [(b"o_abc", 0.0)]
    assert await raw.zscore(store.expiry_key("wxlayout"), "o_abc") == keep


async def test_writes_drop_the_index_entries_of_expired_records(store: RedisWindowStore) -> None:
    now = float(T0)
    short = StoredWindow(window="event", opened_at=now, until=now + 60, left=3)
    await store.open("wx", "o_gone", short, memory=1)
    await store.open("wx", "o_stays", message(now + 120), memory=MEMORY)
    raw = store.redis
    assert await raw.zrange(store.ids_key("wx"), 0, -1) == [b"o_stays"]
    assert await raw.zrange(store.expiry_key("wx"), 0, -1) == [b"o_stays"]


async def test_reachable_reads_a_page_per_round_trip(
    redis_server: RedisServer, prefix: str
) -> None:
    fake = FakeWeChat(clock=FrozenClock(T0))
    async with (
        RedisWindowStore.from_url(redis_server.url, prefix=prefix, page_size=10) as store,
        fake.client(window_store=store) as wx,
    ):
        for i in range(95):
            await wx.windows.opened(f"o_user{i:03d}")
        await wx.windows.opened("o_old", at=T0 - 49 * 3600)
        before = (await store.redis.info("commandstats")).get("cmdstat_zrangebylex", {})
        seen = [openid async for openid in wx.windows.reachable()]
        after = (await store.redis.info("commandstats"))["cmdstat_zrangebylex"]
    assert seen == [f"o_user{i:03d}" for i in range(95)]  # openid order; o_old is not reachable
    assert after["calls"] - before.get("calls", 0) == 10  # 96 users, 10 per page


async def test_a_malformed_record_is_a_typed_error(store: RedisWindowStore) -> None:
    key = store.record_key("wx", "o_bad")
    await store.redis.hset(key, mapping={"w:message:at": "soon", "keep": "1e12"})
    with pytest.raises(WindowStoreError, match="is malformed") as caught:
        await store.get("wx", "o_bad", now=T0)
    assert str(caught.value) == (
        f"Redis key {key} is malformed: a window record hash (keep, w:NAME:at/till/left/ref) "
        "was expected (ValueError)"
    )


async def test_a_malformed_record_a_reservation_finds_is_a_typed_error(
    store: RedisWindowStore,
) -> None:
    """The script finds nothing to spend (0 left); the record it answers cannot be read."""
    key = store.record_key("wx", "o_bad")
    fields = {"w:message:at": "soon", "w:message:till": "1e12", "w:message:left": "0"}
    await store.redis.hset(key, mapping={**fields, "keep": "1e12"})
    with pytest.raises(WindowStoreError, match="is malformed") as caught:
        await store.spend("wx", "o_bad", now=T0, reserve=True)
    assert key in str(caught.value)


async def test_from_url_keeps_its_options(redis_server: RedisServer, prefix: str) -> None:
    """Its own options, and redis-py's (here: the database) for the client it makes."""
    url = redis_server.url.removesuffix("/0")  # a database in the URL would win
    async with RedisWindowStore.from_url(
        url, prefix=prefix, timeout=0.5, page_size=7, db=3
    ) as store:
        assert (store.timeout, store.page_size) == (0.5, 7)
        await store.open("wx", "o_a", message(T0), memory=MEMORY)
    key = store.record_key("wx", "o_a")
    async with (
        redis.asyncio.Redis.from_url(url, db=0) as zero,
        redis.asyncio.Redis.from_url(url, db=3) as three,
    ):
        assert (await zero.exists(key), await three.exists(key)) == (0, 1)


async def test_a_decoding_client_works(redis_server: RedisServer, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store = RedisWindowStore(client, prefix=prefix)
        await store.open("wx", "o_a", message(T0), memory=MEMORY)
        record = await store.get("wx", "o_a", now=T0)
        assert record is not None
        assert record.windows == (message(T0),)
        spend = await store.spend("wx", "o_a", now=T0, reserve=True)
        assert spend.window is not None
        assert spend.window.left == 4
        assert [openid async for openid, _ in store.records("wx", now=T0)] == ["o_a"]
    finally:
        await client.aclose()


async def test_two_clients_on_one_store_share_every_window(
    redis_server: RedisServer, prefix: str
) -> None:
    """Two workers: one receives the push, the other sends; both see one ledger."""
    fake = FakeWeChat(clock=FrozenClock(T0))
    fake.user_says("o_a")
    async with (
        RedisWindowStore.from_url(redis_server.url, prefix=prefix) as one,
        RedisWindowStore.from_url(redis_server.url, prefix=prefix) as two,
        fake.client(window_store=one) as receiver,
        fake.client(window_store=two) as sender,
    ):
        await receiver.windows.opened("o_a", at=T0)
        for _ in range(5):
            await sender.message.send("o_a", Text(content="hi"))
        report = await sender.message.send_many(["o_a"], Text(content="hi"), skip_unreachable=True)
        assert report.results[0].status is SendStatus.SKIPPED
        assert (await receiver.windows.get("o_a")).reason == "no_messages_left"


async def test_sends_go_ahead_while_redis_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeWeChat(clock=FrozenClock(T0))
    fake.user_says("o_a")
    with running_redis(tmp_path) as server:
        store = RedisWindowStore.from_url(server.url, timeout=0.5)
        await store.open("wx", "o_a", message(T0), memory=MEMORY)  # connect while it is up
        server.stop()
        async with (
            store,
            AsyncWeChat(
                fake.appid,
                fake.secret,
                http_client=fake.http_client(),
                window_store=store,
                window_clock=fake.clock.now,
            ) as wx,
        ):
            with caplog.at_level(logging.WARNING, logger="wechat_kf"):
                report = await wx.message.send_many(
                    ["o_a"], Text(content="hi"), skip_unreachable=True
                )
                await wx.message.send("o_a", Text(content="hi"))
            with pytest.raises(WindowStoreError):
                await wx.windows.get("o_a")
    assert report.results[0].status is SendStatus.SENT
    assert len(fake.sent_to("o_a")) == 2
    assert "window ledger: could not check a window" in caplog.text


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gets_a_clear_error(redis_server: RedisServer) -> None:
    store = RedisWindowStore(redis.asyncio.Redis.from_url(redis_server.url))
    with pytest.raises(WindowStoreError, match="asyncio only"):
        await store.get("wx", "o_a", now=T0)


@pytest.mark.parametrize("page_size", [0, -1, True, 1.5, "10"])
def test_page_size_is_checked(page_size: Any) -> None:
    client = redis.asyncio.Redis()
    with pytest.raises(ValueError) as caught:
        RedisWindowStore(client, page_size=page_size)
    assert str(caught.value) == f"page_size must be an integer >= 1, got {page_size!r}"


def test_a_page_of_one_and_a_timeout_are_kept() -> None:
    store = RedisWindowStore(redis.asyncio.Redis(), page_size=1, timeout=0.5)
    assert (store.page_size, store.timeout) == (1, 0.5)


async def test_more_operations_than_connections_wait_for_one(
    redis_server: RedisServer, prefix: str
) -> None:
    """A client made by from_url waits for a free connection (redis-py's default pool fails at
    once with MaxConnectionsError): a bulk send with more workers than connections still works.
    """
    async with RedisWindowStore.from_url(
        redis_server.url, prefix=prefix, max_connections=4
    ) as store:
        await store.open("wx", "o_a", message(T0), memory=MEMORY)
        outcomes: list[object] = []

        async def reserve() -> None:
            outcomes.append((await store.spend("wx", "o_a", now=T0, reserve=True)).outcome.value)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(reserve)
    assert sorted(set(outcomes)) == ["charged", "exhausted"]
    assert outcomes.count("charged") == 5


async def test_a_malformed_record_streamed_is_a_typed_error_naming_its_key(
    store: RedisWindowStore,
) -> None:
    key = store.record_key("wx", "o_bad")
    await store.redis.hset(key, mapping={"w:message:at": "soon", "keep": "1e12"})
    await store.redis.zadd(store.ids_key("wx"), {"o_bad": 0})
    with pytest.raises(WindowStoreError, match="is malformed") as caught:
        _ = [openid async for openid, _ in store.records("wx", now=T0)]
    assert key in str(caught.value)


async def test_refs_that_look_like_field_names_round_trip(store: RedisWindowStore) -> None:
    """A window's ref is free text: one spelled like a record field is still a ref."""
    for ref in ("keep", "checked", "errcode", "w:event:at"):
        openid = f"o_{ref}"
        await store.open("wx", openid, message(T0, left=1, ref=ref), memory=MEMORY)
        await store.spend("wx", openid, now=T0, reserve=True)
        exhausted = await store.spend("wx", openid, now=T0, reserve=True)
        assert exhausted.record is not None
        assert exhausted.record.windows == (message(T0, left=0, ref=ref),)
        assert exhausted.record.keep_until == T0 + 48 * 3600 + MEMORY


async def test_a_window_name_may_hold_a_colon(store: RedisWindowStore) -> None:
    """A rule named ``menu:click`` (``WindowLedger(rules=...)``) is one window, not two."""
    named = StoredWindow(window="menu:click", opened_at=T0, until=T0 + 60, left=3, ref="a:b")
    await store.open("wx", "o_a", named, memory=MEMORY)
    record = await store.get("wx", "o_a", now=T0)
    assert record is not None
    assert record.windows == (named,)


@pytest.mark.parametrize(
    ("what", "appid", "operation"),
    [
        ("window read", "wx", lambda s: s.get("wx", "o_a", now=T0)),
        ("window open", "wx", lambda s: s.open("wx", "o_a", message(T0), memory=MEMORY)),
        ("window spend", "wx", lambda s: s.spend("wx", "o_a", now=T0, reserve=True)),
        ("window refund", "wx", lambda s: s.refund("wx", "o_a", window="message", opened_at=T0)),
        (
            "window correction",
            "wx",
            lambda s: s.correct("wx", "o_a", errcode=45015, before=T0, now=T0, memory=MEMORY),
        ),
        ("window forget", "wx_bad", lambda s: s.forget("wx_bad", "o_a")),
        ("window index read", "wx_bad", lambda s: anext(aiter(s.records("wx_bad", now=T0)))),
        ("window records read", "wx", lambda s: anext(aiter(s.records("wx", now=T0)))),
    ],
)
async def test_each_failure_names_its_operation(
    store: RedisWindowStore, what: str, appid: str, operation: Any
) -> None:
    """Redis refuses (keys of the wrong type): the typed error says which operation failed."""
    await store.redis.set(store.record_key("wx", "o_a"), "not a hash")
    await store.redis.zadd(store.ids_key("wx"), {"o_a": 0})
    await store.redis.set(store.ids_key("wx_bad"), "not a sorted set")
    with pytest.raises(WindowStoreError) as caught:
        await operation(store)
    assert str(caught.value).startswith(f"Redis {what} for {appid} failed: ResponseError: ")
