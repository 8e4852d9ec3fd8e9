"""Eight OS processes, one Redis, one picture: one upload between them.

Worker processes (this module run as ``python -m tests.test_multiprocess_media``) each build an
``AsyncWeChat`` whose token store and media-id store share one Redis client, against the fake
WeChat served on a loopback port by the test process. On command, all of them send the same
picture *file* to their own recipients at once; the fake counts the uploads it receives.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.redis_server import RedisServer, running_redis
from tests.worker_process import Worker
from wechat_kf.testing import FakeServer, FakeWeChat, sample_media
from wechat_kf.testing._media import MEDIA_LIFETIME

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 8
RECIPIENTS = 40  # per process
UPLOAD = "/cgi-bin/media/upload"


# ---------------------------------------------------------------------- the worker process


async def _serve_commands(config: dict[str, Any]) -> None:
    import httpx

    from wechat_kf import AsyncWeChat, Image
    from wechat_kf._redis import redis_client
    from wechat_kf._redis_media import RedisMediaIdStore
    from wechat_kf._redis_tokens import RedisTokenStore

    def reply(**message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    redis = redis_client(config["redis_url"])
    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=8))
    wx = AsyncWeChat(
        config["appid"],
        config["secret"],
        http_client=http,
        base_url=config["base_url"],
        token_store=RedisTokenStore(redis, prefix=config["prefix"]),
        media_store=RedisMediaIdStore(redis, prefix=config["prefix"]),
    )
    reply(ready=True, pid=os.getpid())
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if not line or json.loads(line)["cmd"] == "exit":
            break
        report = await wx.message.send_many(
            config["recipients"], Image(file=config["picture"]), max_concurrency=4
        )
        reply(
            sent=report.sent,
            errors=[repr(r.error) for r in report.results if r.error is not None][:3],
            uploads=wx.media.cache.uploads,
        )
    await http.aclose()
    await redis.aclose()


def worker_main() -> None:
    """Entry point of a worker process: JSON commands on stdin, JSON answers on stdout."""
    anyio.run(_serve_commands, json.loads(sys.argv[1]), backend="asyncio")


# ---------------------------------------------------------------------- the test side


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeWeChat, list[Worker]]]:
    fake = FakeWeChat()
    workdir = Path(tmp_path_factory.mktemp("multiprocess-media"))
    picture = workdir / "notice.jpg"
    picture.write_bytes(sample_media("image"))
    with running_redis(workdir) as redis, fake.serve() as server:
        workers = _spawn(fake, server, redis, picture, workdir)
        try:
            yield fake, workers
        finally:
            for worker in workers:
                worker.close()


def _spawn(
    fake: FakeWeChat, server: FakeServer, redis: RedisServer, picture: Path, logs: Path
) -> list[Worker]:
    prefix = f"mpmedia{uuid.uuid4().hex[:8]}:"
    workers = []
    for index in range(PROCESSES):
        recipients = [f"p{index}u{n:03d}" for n in range(RECIPIENTS)]
        for openid in recipients:
            fake.user_says(openid)
        config = {
            "redis_url": redis.url,
            "base_url": server.base_url,
            "appid": fake.appid,
            "secret": fake.secret,
            "prefix": prefix,
            "picture": str(picture),
            "recipients": recipients,
        }
        workers.append(Worker("tests.test_multiprocess_media", config, logs / f"worker{index}.log"))
    for worker in workers:
        assert worker.recv()["ready"]
    return workers


def _send_all(workers: list[Worker]) -> list[dict[str, Any]]:
    for worker in workers:
        worker.send(cmd="send")
    results = [worker.recv() for worker in workers]
    errors = [e for r in results for e in r["errors"]]
    assert not errors, errors
    assert sum(r["sent"] for r in results) == PROCESSES * RECIPIENTS
    return results


def test_8_processes_sending_one_picture_upload_it_once(
    fleet: tuple[FakeWeChat, list[Worker]],
) -> None:
    fake, workers = fleet
    results = _send_all(workers)
    assert len(fake.requests_to(UPLOAD)) == 1
    assert sum(r["uploads"] for r in results) == 1
    (held,) = fake.uploads
    for user in fake.users.values():
        assert [body["image"]["media_id"] for body in user.sent] == [held.media_id]

    # WeChat drops the picture (3 days later): every process meets 40007; one re-upload.
    held.created_at -= MEDIA_LIFETIME
    for openid in list(fake.users):
        fake.user_says(openid)
    results = _send_all(workers)
    assert len(fake.requests_to(UPLOAD)) == 2
    assert sum(r["uploads"] for r in results) == 2
    renewed = fake.uploads[-1]
    for user in fake.users.values():
        assert [body["image"]["media_id"] for body in user.sent] == [
            held.media_id,
            renewed.media_id,
        ]  # nobody sent twice
    print(
        f"\n[multiprocess] {PROCESSES} processes x {RECIPIENTS} recipients, one picture file: "
        f"1 upload; after WeChat dropped it, 1 re-upload between them"
    )


if __name__ == "__main__":
    worker_main()
