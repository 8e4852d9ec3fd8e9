"""RedisMediaIdStore against a real redis-server: key layout, what it writes, malformed entries.

The store contract itself runs in ``test_media_store_contract.py``. asyncio only (redis.asyncio).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

import pytest
import redis.asyncio

from tests.redis_server import RedisServer
from wechat_kf import MediaStoreError, MediaType, RedisMediaIdStore, UploadedMedia
from wechat_kf._redis_media import _milliseconds

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000.25
KEY = "image:" + "ab" * 32
MEDIA = UploadedMedia.created(
    "M" * 40, MediaType.VOICE, datetime.fromtimestamp(T0, tz=timezone.utc)
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisMediaIdStore]:
    async with RedisMediaIdStore.from_url(redis_server.url, prefix=prefix) as store:
        yield store


def test_defaults_and_key_layout() -> None:
    store = RedisMediaIdStore(redis.asyncio.Redis(), prefix="p:")
    assert store.timeout == 5.0
    assert store.error is MediaStoreError
    assert store.media_key("wx1", KEY) == f"p:{{wx1}}:media:{KEY}"
    assert store.lock_key("wx1", KEY) == f"p:{{wx1}}:media_lock:{KEY}"


@pytest.mark.parametrize(
    ("seconds", "milliseconds"),
    [(0.0, 1), (0.0001, 1), (0.001, 1), (0.0015, 2), (1.0001, 1001), (2.5, 2500), (60, 60000)],
)
def test_ttls_go_to_redis_in_whole_milliseconds_rounded_up(
    seconds: float, milliseconds: int
) -> None:
    assert _milliseconds(seconds) == milliseconds


async def test_set_writes_one_hash_with_its_expiry_replacing_any_other(
    store: RedisMediaIdStore,
) -> None:
    raw = store.redis
    name = store.media_key("wx", KEY)
    await raw.hset(name, mapping={"junk": "1", "media_id": "old"})
    await store.set("wx", KEY, MEDIA, 60.5)
    assert await raw.hgetall(name) == {
        b"media_id": b"M" * 40,
        b"type": b"voice",
        b"created_at": repr(T0).encode(),
        b"expires_at": repr(T0 + 3 * 86400).encode(),
    }
    assert 50_000 < await raw.pttl(name) <= 60_500
    assert await store.get("wx", KEY) == MEDIA


async def test_the_upload_lock_is_a_fenced_key_with_its_ttl(store: RedisMediaIdStore) -> None:
    raw = store.redis
    fence = await store.try_lock("wx", KEY, 30.5)
    assert fence is not None
    name = store.lock_key("wx", KEY)
    assert await raw.get(name) == fence.encode()
    assert 20_000 < await raw.pttl(name) <= 30_500
    assert await store.try_lock("wx", KEY, 30) is None
    assert await store.unlock("wx", KEY, "other") is False
    assert await store.unlock("wx", KEY, fence) is True
    assert await raw.exists(name) == 0


async def test_compare_and_delete_answers_a_bool(store: RedisMediaIdStore) -> None:
    await store.set("wx", KEY, MEDIA, 60)
    assert await store.compare_and_delete("wx", KEY, "other") is False
    assert await store.compare_and_delete("wx", KEY, MEDIA.media_id) is True
    assert await store.redis.exists(store.media_key("wx", KEY)) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"media_id": "M"},
        {"type": "image", "created_at": "1", "expires_at": "2"},
        {"media_id": "", "type": "image", "created_at": "1", "expires_at": "2"},
        {"media_id": "M", "type": "", "created_at": "1", "expires_at": "2"},
        {"media_id": "M", "type": "image", "expires_at": "2"},
        {"media_id": "M", "type": "image", "created_at": "1"},
        {"media_id": "M", "type": "image", "created_at": "soon", "expires_at": "2"},
        {"media_id": "M", "type": "image", "created_at": "1", "expires_at": "1e400"},
    ],
)
async def test_a_malformed_entry_is_a_typed_error_naming_its_key(
    store: RedisMediaIdStore, fields: dict[str, str]
) -> None:
    name = store.media_key("wx", KEY)
    await store.redis.hset(name, mapping=fields)
    with pytest.raises(MediaStoreError) as caught:
        await store.get("wx", KEY)
    assert str(caught.value) == (
        f"Redis key {name} is malformed: a hash with fields media_id, type, created_at, "
        "expires_at (times in unix seconds) was expected"
    )
    assert caught.value.__cause__ is None


async def test_an_entry_of_plain_fields_is_read(store: RedisMediaIdStore) -> None:
    name = store.media_key("wx", KEY)
    await store.redis.hset(
        name, mapping={"media_id": "M", "type": "thumb", "created_at": "1", "expires_at": "2.5"}
    )
    assert await store.get("wx", KEY) == UploadedMedia(
        media_id="M",
        type=MediaType.THUMB,
        created_at=datetime.fromtimestamp(1, tz=timezone.utc),
        expires_at=datetime.fromtimestamp(2.5, tz=timezone.utc),
    )


async def test_a_decoding_client_works(redis_server: RedisServer, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        store = RedisMediaIdStore(client, prefix=prefix)
        await store.set("wx", KEY, MEDIA, 60)
        assert await store.get("wx", KEY) == MEDIA
        fence = await store.try_lock("wx", KEY, 30)
        assert fence is not None
        assert await store.unlock("wx", KEY, fence) is True
        assert await store.compare_and_delete("wx", KEY, MEDIA.media_id) is True
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A Redis URL where nothing listens (a port just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize(
    ("what", "operation"),
    [
        ("read", lambda s: s.get("wx", KEY)),
        ("write", lambda s: s.set("wx", KEY, MEDIA, 60)),
        ("compare-and-delete", lambda s: s.compare_and_delete("wx", KEY, "M")),
        ("upload lock", lambda s: s.try_lock("wx", KEY, 30)),
        ("upload unlock", lambda s: s.unlock("wx", KEY, "fence")),
    ],
)
async def test_each_failure_names_its_operation(dead_url: str, what: str, operation: Any) -> None:
    """Redis unreachable: the typed error says which operation failed, for which appid."""
    async with RedisMediaIdStore.from_url(dead_url, retry=None) as store:
        with pytest.raises(MediaStoreError) as caught:
            await operation(store)
    assert str(caught.value).startswith(f"Redis {what} for wx failed: ConnectionError: ")
