"""The measurements beside throughput: token single-flight, import time, streaming memory,
``records.iter``, and ``send_many`` of a picture from a file against the same picture by a
known media_id."""

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


def _served(base: str, what: str = "tokens") -> int:
    with urllib.request.urlopen(f"{base}/_stats", timeout=5) as answer:
        return int(json.loads(answer.read())[what])


def _tokens_served(base: str) -> int:
    return _served(base, "tokens")


#: A 200 KB JPEG (by its bytes): a typical notice picture.
PICTURE = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(200 * 1024)


def media_send_many(
    base: str, n: int, c: int, reps: int, transport: str, picture: Path
) -> dict[str, Any]:
    """``send_many`` of ``Image(file=picture)`` vs ``Image(media_id=known)``, msgs/s medians.

    Each repetition makes a new client (its media-id cache cold), warms its connections up, then
    times: the file (the run reads, hashes and uploads the picture once), then the file again
    (the cache hit: no upload) and the known media_id, these two in alternating order. The
    server counts the uploads.
    """
    import anyio

    from benchmarks._clients import openids, timed_send_many
    from wechat_kf import AsyncWeChat, Image

    picture.write_bytes(PICTURE)
    recipients = openids(n)
    rates: dict[str, list[float]] = {"known_media_id": [], "file_cold": [], "file_warm": []}

    async def timed(wx: Any, message: Any) -> float:
        return await timed_send_many(wx, recipients, message, c)

    def client() -> Any:
        return AsyncWeChat(APPID, SECRET, base_url=base, transport=transport, max_connections=c)  # type: ignore[arg-type]

    async def run() -> None:
        known = Image(media_id="BENCH_KNOWN_" + "k" * 52)
        for rep in range(reps):
            async with client() as wx:  # a new client each time: its media-id cache is cold
                await wx.access_token()
                await wx.message.send_many(openids(2 * c), known, max_concurrency=c)  # warm-up
                rates["file_cold"].append(await timed(wx, Image(file=picture)))
                # Then, on the same client and connections: the file again (cache warm) and the
                # known media_id, the order alternating so that drift hits both alike.
                pair = [("file_warm", Image(file=picture)), ("known_media_id", known)]
                for key, message in pair if rep % 2 == 0 else reversed(pair):
                    rates[key].append(await timed(wx, message))

    before = _served(base, "uploads")
    anyio.run(run, backend="asyncio")
    medians = {key: round(statistics.median(values), 1) for key, values in rates.items()}
    return {
        "n": n,
        "concurrency": c,
        "transport": transport,
        "reps": reps,
        "picture_bytes": len(PICTURE),
        "uploads": _served(base, "uploads") - before,
        "samples": rates,
        **medians,
        "warm_ratio": round(medians["file_warm"] / medians["known_media_id"], 3),
        "cold_ratio": round(medians["file_cold"] / medians["known_media_id"], 3),
    }


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
