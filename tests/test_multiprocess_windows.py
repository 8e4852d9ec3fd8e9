"""Eight OS processes, one Redis, a few users' windows: never more messages than allowed.

Each worker process (this module run as ``python -m tests.test_multiprocess_windows``) builds a
window ledger on one ``RedisWindowStore`` and, on the parent's signal, runs a few hundred
concurrent operations at random: recording the users' interactions (the same pushes reach
several workers, and a newer interaction renews a window while others spend it) and reserving
messages before sends. Each worker reports every message it was granted, with the opening it
came from. No opening may grant more than its rule allows, and what the store finally holds
must be exactly the rule's count minus the messages granted from it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio

from tests.redis_server import RedisServer
from wechat_kf import WINDOW_RULES, Interaction

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = 8
OPERATIONS = 300
#: Operations in flight at once in each process (more than the pool's connections).
IN_FLIGHT = 150
APPID = "wxmultiprocess"
NOW = 1_700_000_000.0
USERS = ("o_user0", "o_user1", "o_user2")
#: Per user: the interactions of the test, oldest first (kind, seconds before NOW, ref).
INTERACTIONS = (
    ("message", 100.0, "msg:1"),
    ("message", 50.0, "msg:2"),
    ("menu_click", 30.0, "event:CLICK:BUY"),
    ("follow", 10.0, "event:subscribe:"),
)
MESSAGES = {rule.window: rule.messages for rule in WINDOW_RULES}


# ---------------------------------------------------------------------- the worker process


async def _work(config: dict[str, Any]) -> list[tuple[str, str, float]]:
    from wechat_kf._redis_windows import RedisWindowStore
    from wechat_kf._window_ledger import WindowLedger

    rng = random.Random(config["seed"])
    granted: list[tuple[str, str, float]] = []
    # Atomicity is under test, not latency: a generous timeout on a machine other tests load.
    async with RedisWindowStore.from_url(
        config["url"], prefix=config["prefix"], timeout=30
    ) as store:
        ledger = WindowLedger(appid=APPID, store=store, clock=lambda: NOW)
        await store.get(APPID, USERS[0], now=NOW)  # connect before the start signal
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)

        async def one() -> None:
            openid = rng.choice(USERS)
            if rng.random() < 0.3:
                kind, ago, ref = rng.choice(INTERACTIONS)
                await ledger.opened(openid, kind=Interaction(kind), at=NOW - ago, ref=ref)
                return
            reservation = await ledger.reserve(openid)
            if reservation is not None:
                granted.append((openid, reservation.window, reservation.opened_at))

        limiter = anyio.CapacityLimiter(IN_FLIGHT)

        async def limited() -> None:
            async with limiter:
                await _quietly(one)

        async with anyio.create_task_group() as tg:
            for _ in range(OPERATIONS):
                tg.start_soon(limited)
    return granted


async def _quietly(step: Any) -> None:
    from wechat_kf import UnreachableError

    with contextlib.suppress(UnreachableError):  # nothing left: what the test wants to see
        await step()


class _Failures(logging.Handler):
    """The ledger logs a store failure instead of raising it: here any one fails the worker."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def main() -> None:
    config = json.loads(sys.argv[1])
    failures = _Failures()
    logging.getLogger("wechat_kf").addHandler(failures)
    granted = anyio.run(_work, config)
    if failures.messages:
        raise SystemExit(f"the window store failed: {failures.messages[0]}")
    print(json.dumps(granted), flush=True)


# ---------------------------------------------------------------------- the test


def test_eight_processes_never_spend_more_than_a_window_allows(redis_server: RedisServer) -> None:
    prefix = f"mp{uuid.uuid4().hex[:8]}:"
    # The oldest interaction of each user is known before the workers start.
    anyio.run(_seed, redis_server.url, prefix)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.test_multiprocess_windows",
                json.dumps({"url": redis_server.url, "prefix": prefix, "seed": seed}),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(PROCESSES)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # all at once
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert all(worker.returncode == 0 for worker in workers)
    granted: collections.Counter[tuple[str, str, float]] = collections.Counter()
    for output in outputs:
        for openid, window, opened_at in json.loads(output.strip().splitlines()[-1]):
            granted[(openid, window, opened_at)] += 1
    # At least the first opening of every user was spent, from several processes at once.
    assert sum(granted.values()) >= len(USERS) * MESSAGES["message"], granted
    for (_, window, _), count in granted.items():
        assert count <= MESSAGES[window], granted
    final = anyio.run(_records, redis_server.url, prefix)
    for openid, windows in final.items():
        for window, opened_at, left in windows:
            assert left == MESSAGES[window] - granted[(openid, window, opened_at)], (
                openid,
                window,
                opened_at,
                left,
                granted,
            )
    # Every user was worked on: the newest interactions renewed windows while others spent.
    assert {openid for openid, _, _ in granted} == set(USERS)


async def _seed(url: str, prefix: str) -> None:
    from wechat_kf._redis_windows import RedisWindowStore
    from wechat_kf._window_ledger import WindowLedger

    async with RedisWindowStore.from_url(url, prefix=prefix) as store:
        ledger = WindowLedger(appid=APPID, store=store, clock=lambda: NOW)
        kind, ago, ref = INTERACTIONS[0]
        for openid in USERS:
            await ledger.opened(openid, kind=Interaction(kind), at=NOW - ago, ref=ref)


async def _records(url: str, prefix: str) -> dict[str, list[tuple[str, float, int]]]:
    from wechat_kf._redis_windows import RedisWindowStore

    async with RedisWindowStore.from_url(url, prefix=prefix) as store:
        return {
            openid: [(w.window, w.opened_at, w.left) for w in record.windows]
            async for openid, record in store.records(APPID, now=NOW)
        }


if __name__ == "__main__":
    main()
