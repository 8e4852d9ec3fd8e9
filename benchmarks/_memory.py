"""Peak memory of a streaming bulk send to many recipients (run in its own process).

``python -m benchmarks._memory N C`` streams ``N`` recipients through
``wx.message.stream_many`` with ``C`` workers and prints one JSON line: the RSS after imports
and setup, the peak RSS (``ru_maxrss``), the time and the counts. The recipients come from a
generator and each result is consumed (counted) as it arrives, as a caller writing results to
its own storage would. The HTTP transport is an in-process stub answering like WeChat, so a
million sends take a minute rather than several: memory does not depend on the network (at
most ``C`` requests are in flight either way).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import anyio
import httpx

SEND_OK = b'{"errcode":0,"errmsg":"ok"}'
TOKEN = json.dumps({"access_token": "MEM_" + "t" * 120, "expires_in": 7200}).encode()


class StubWeChat(httpx.AsyncBaseTransport):
    """Answers every send with success and every token request with a token; no sockets."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = TOKEN if request.url.path.endswith("token") else SEND_OK
        return httpx.Response(200, content=body, request=request)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Resident memory now."""
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    """Peak resident memory of this process image.

    ``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` across ``exec``, so a child of a
    large parent would report the parent's size.
    """
    return _status_mb("VmHWM:")


def recipients(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"oMEM{i:024d}"


async def run(n: int, c: int) -> dict[str, float | int]:
    from wechat_kf import AsyncWeChat, Text

    http = httpx.AsyncClient(transport=StubWeChat())
    async with AsyncWeChat("wx0123456789abcdef", "mem-secret", http_client=http) as wx:
        await wx.access_token()
        before = rss_mb()
        started = time.perf_counter()
        seen = 0
        async with wx.message.stream_many(
            recipients(n), Text(content="notice 通知"), max_concurrency=c
        ) as results:
            async for _ in results:
                seen += 1
        elapsed = time.perf_counter() - started
        await http.aclose()
    peak = peak_rss_mb()
    summary = results.summary
    return {
        "recipients": n,
        "concurrency": c,
        "results_seen": seen,
        "sent": summary.sent,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak, 1),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    print(json.dumps(anyio.run(run, n, c)))


if __name__ == "__main__":
    main()
