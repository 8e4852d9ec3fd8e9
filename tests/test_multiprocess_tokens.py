"""Many OS processes, one Redis, one token: the cross-process single-flight proof.

Eight worker processes (this module run as ``python -m tests.test_multiprocess_tokens``) each
build an ``AsyncWeChat`` on one ``RedisTokenStore`` and the fake WeChat served on a loopback
port by the test process, then run 200 concurrent calls on command. The fake counts every token
request it receives.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.redis_server import RedisServer, running_redis
from tests.worker_process import Worker
from wechat_kf import AsyncWeChat
from wechat_kf.testing import FakeServer, FakeWeChat

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 8
CALLS = 200
STABLE = "/cgi-bin/stable_token"
KF_LIST = "/cgi-bin/customservice/getkflist"


def digest(token: str) -> str:
    """Workers report tokens by digest: no token value on any pipe or in any failure text."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------- the worker process


async def _concurrently(wx: AsyncWeChat, kind: str, n: int) -> tuple[set[str], list[str]]:
    """``n`` concurrent calls: ``access_token()`` ("tokens") or ``kf.list()`` ("calls")."""
    errors: list[str] = []
    tokens: set[str] = set()

    async def one_call() -> None:
        try:
            if kind == "calls":
                await wx.kf.list()
            tokens.add(digest(await wx.access_token()))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one_call)
    return tokens, errors


async def _serve_commands(config: dict[str, Any]) -> None:
    import httpx

    from wechat_kf._redis_tokens import RedisTokenStore

    wx: AsyncWeChat | None = None
    store: RedisTokenStore | None = None
    http: httpx.AsyncClient | None = None

    async def close() -> None:
        if http is not None and store is not None:
            await http.aclose()
            await store.aclose()

    def reply(**message: Any) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    reply(ready=True, pid=os.getpid())
    while True:
        line = await anyio.to_thread.run_sync(sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "exit":
            break
        if command["cmd"] == "client":
            await close()
            store = RedisTokenStore.from_url(config["redis_url"], prefix=command["prefix"])
            # A modest pool: 8 processes x 100 connections would swamp the fake's one thread.
            http = httpx.AsyncClient(limits=httpx.Limits(max_connections=20))
            wx = AsyncWeChat(
                config["appid"],
                config["secret"],
                http_client=http,
                base_url=config["base_url"],
                token_store=store,
                token_lock_ttl=command["lock_ttl"],
                token_lock_timeout=command["lock_timeout"],
            )
            reply(ok=True)
            continue
        assert wx is not None
        started = time.monotonic()
        tokens, errors = await _concurrently(wx, command["cmd"], command["n"])
        reply(
            tokens=sorted(tokens),
            errors=errors[:5],
            error_count=len(errors),
            fetches=wx.tokens.fetch_count,
            seconds=time.monotonic() - started,
        )
    await close()


def worker_main() -> None:
    """Entry point of a worker process: JSON commands on stdin, JSON answers on stdout."""
    anyio.run(_serve_commands, json.loads(sys.argv[1]), backend="asyncio")


# ---------------------------------------------------------------------- the test side


class Fleet:
    """The fake WeChat on loopback, one Redis, and the worker processes."""

    def __init__(self, fake: FakeWeChat, server: FakeServer, redis: RedisServer) -> None:
        self.fake = fake
        self.server = server
        self.redis = redis
        self.workers: list[Worker] = []
        self.spawned = 0

    def spawn(self, count: int, logs: Path) -> None:
        config = {
            "redis_url": self.redis.url,
            "base_url": self.server.base_url,
            "appid": self.fake.appid,
            "secret": self.fake.secret,
        }
        first = self.spawned
        self.spawned += count
        new = [
            Worker("tests.test_multiprocess_tokens", config, logs / f"worker{first + i}.log")
            for i in range(count)
        ]
        self.workers += new
        for worker in new:
            assert worker.recv()["ready"]

    def new_clients(self, *, lock_ttl: float = 15.0, lock_timeout: float = 30.0) -> str:
        prefix = f"mp{uuid.uuid4().hex[:8]}:"
        for worker in self.workers:
            worker.send(cmd="client", prefix=prefix, lock_ttl=lock_ttl, lock_timeout=lock_timeout)
        for worker in self.workers:
            assert worker.recv()["ok"]
        return prefix

    def run(self, workers: list[Worker], cmd: str, n: int) -> list[dict[str, Any]]:
        for worker in workers:
            worker.send(cmd=cmd, n=n)
        return [worker.recv(timeout=60) for worker in workers]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    fake = FakeWeChat()
    workdir = Path(tmp_path_factory.mktemp("multiprocess"))
    with running_redis(workdir) as redis, fake.serve() as server:
        fleet = Fleet(fake, server, redis)
        try:
            fleet.spawn(PROCESSES, workdir)
            yield fleet
        finally:
            for worker in fleet.workers:
                worker.close()


def all_ok(results: list[dict[str, Any]]) -> set[str]:
    """Assert no call failed; return the set of token digests every call saw."""
    errors = [e for r in results for e in r["errors"]]
    assert sum(r["error_count"] for r in results) == 0, errors
    return {t for r in results for t in r["tokens"]}


def test_8_processes_x_200_calls_one_token_request_then_one_recovery(fleet: Fleet) -> None:
    fake = fleet.fake
    fleet.new_clients()
    before = len(fake.token_requests)

    started = time.monotonic()
    cold = fleet.run(fleet.workers, "tokens", CALLS)
    cold_seconds = time.monotonic() - started
    tokens = all_ok(cold)
    assert len(tokens) == 1, "the processes ended up with different tokens"
    assert len(fake.token_requests) - before == 1
    assert sum(r["fetches"] for r in cold) == 1

    # WeChat invalidates the token: every call in every process hits 40001 once.
    fake.invalidate_tokens()
    api_before = len(fake.requests_to(KF_LIST))
    started = time.monotonic()
    recovered = fleet.run(fleet.workers, "calls", CALLS)
    recover_seconds = time.monotonic() - started
    new_tokens = all_ok(recovered)
    assert len(new_tokens) == 1
    assert new_tokens != tokens
    assert len(fake.token_requests) - before == 2, "recovery must cost exactly one token request"
    assert sum(r["fetches"] for r in recovered) == 2
    api_calls = len(fake.requests_to(KF_LIST)) - api_before
    assert api_calls == PROCESSES * CALLS * 2  # each call: rejected once, resent once

    print(
        f"\n[multiprocess] {PROCESSES} processes x {CALLS} concurrent calls, cold store: "
        f"1 token request in {cold_seconds:.2f} s; after invalidation: "
        f"{PROCESSES * CALLS} API calls rejected with 40001 and resent ({api_calls} requests), "
        f"1 more token request in {recover_seconds:.2f} s"
    )


def test_a_holder_killed_mid_refresh_blocks_the_others_only_until_the_lock_ttl(
    fleet: Fleet,
) -> None:
    fake, ttl = fleet.fake, 2.0
    prefix = fleet.new_clients(lock_ttl=ttl, lock_timeout=20.0)
    lock_key = f"{prefix}{{{fake.appid}}}:lock"
    holder, others = fleet.workers[0], fleet.workers[1:]
    before = len(fake.token_requests)

    fake.inject(STABLE, delay=60)  # the holder's token request will hang
    holder.send(cmd="tokens", n=1)
    redis = fleet.redis.client()
    deadline = time.monotonic() + 10
    while len(fake.token_requests) == before or not redis.exists(lock_key):
        assert time.monotonic() < deadline, "the holder never started its refresh"
        time.sleep(0.01)
    locked_at = time.monotonic()
    lock_ttl_ms = redis.pttl(lock_key)

    for worker in others:
        worker.send(cmd="tokens", n=CALLS)
    time.sleep(0.2)  # they are waiting on the lock now
    holder.kill()
    results = [worker.recv(timeout=30) for worker in others]
    waited = time.monotonic() - locked_at

    # Every call succeeded: none waited out the 20 s lock_timeout (that fails with
    # TokenRefreshTimeoutError), so the dead holder blocked them only for its lock's TTL.
    tokens = all_ok(results)
    assert len(tokens) == 1
    # The killed holder's request and exactly one more, once its lock expired.
    assert len(fake.token_requests) - before == 2
    assert 0 < lock_ttl_ms <= ttl * 1000
    print(
        f"\n[multiprocess] holder SIGKILLed mid-refresh holding a {ttl:g} s lock: "
        f"{len(others)} processes x {CALLS} calls got the token {waited:.2f} s after the lock "
        f"was taken, with 1 more token request"
    )
    fleet.workers.remove(holder)
    holder.close()
    # The fleet keeps its eight processes for whichever test runs next (any order).
    fleet.spawn(1, holder.log.parent)


if __name__ == "__main__":
    worker_main()
