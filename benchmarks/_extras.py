"""The measurements beside throughput: token single-flight, import time, streaming memory,
``records.iter``."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks._clients import APPID, SECRET

ROOT = Path(__file__).parent.parent


def _tokens_served(base: str) -> int:
    with urllib.request.urlopen(f"{base}/_stats", timeout=5) as answer:
        return int(json.loads(answer.read())["tokens"])


def single_flight(base: str, callers: int, backend: str) -> dict[str, Any]:
    """``callers`` concurrent cold ``wx.access_token()`` calls: how many token fetches, how long."""
    import anyio

    from wechat_kf import AsyncWeChat

    async def run() -> dict[str, Any]:
        async with AsyncWeChat(APPID, SECRET, base_url=base, max_connections=16) as wx:
            before = _tokens_served(base)
            values: list[str] = []

            async def call() -> None:
                values.append(await wx.access_token())

            started = time.perf_counter()
            async with anyio.create_task_group() as tg:
                for _ in range(callers):
                    tg.start_soon(call)
            elapsed = time.perf_counter() - started
            return {
                "backend": backend,
                "callers": callers,
                "token_requests": _tokens_served(base) - before,
                "distinct_tokens": len(set(values)),
                "seconds": round(elapsed, 3),
            }

    return anyio.run(run, backend=backend)


def _timed_import(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return float(out.stdout.strip())


def import_time(repeat: int) -> dict[str, Any]:
    """Median wall time of ``import wechat_kf`` in a fresh interpreter (and of httpx alone).

    httpx imports its command line (click and rich, ~40 ms) whenever they are installed; the
    ``without_click_rich`` figure hides them, as on a machine without them.
    """
    hide = "import sys; sys.modules['click'] = sys.modules['rich'] = None; "
    results = {}
    for name, statement in (
        ("wechat_kf", "import wechat_kf"),
        ("httpx", "import httpx"),
        ("wechat_kf_without_click_rich", hide + "import wechat_kf"),
        ("wechat_kf_client_ready", "import wechat_kf; wechat_kf.AsyncWeChat('wx1', 's').message"),
    ):
        times = [_timed_import(statement) for _ in range(repeat)]
        results[name] = round(statistics.median(times) * 1000, 1)
    return {"unit": "ms", "repeat": repeat, **results}


def records_iter(records: int, backend: str) -> dict[str, Any]:
    """``records.iter`` over ``records`` records on the fake over loopback, in its own process."""
    return _subprocess_json("benchmarks._records", str(records), backend)


def _subprocess_json(module: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", module, *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def streaming_memory(recipients: int, concurrency: int) -> dict[str, Any]:
    """Peak RSS of a streaming send to ``recipients``, in its own process."""
    return _subprocess_json("benchmarks._memory", str(recipients), str(concurrency))
