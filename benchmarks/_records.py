"""``records.iter`` speed and memory over loopback (run in its own process).

``python -m benchmarks._records N [BACKEND]`` fills the fake WeChat with ``N`` chat records over
two days (so ``iter`` crosses a 24-hour window), serves it on a loopback port, and iterates them
all with ``wx.records.iter`` (pages of 10,000), consuming each record as it arrives. Prints one
JSON line: records per second (and per CPU-second), the RSS after setup and the peak RSS
(``VmHWM``): the growth is
what iterating costs, a few pages whatever ``N``. The fake runs in this process (a thread), so
its own work (filtering and encoding each page) is in the figure, as in the tests.
"""

from __future__ import annotations

import json
import sys
import time

import anyio

from benchmarks._memory import peak_rss_mb, rss_mb

T0 = 1_700_000_000
SPAN = 2 * 86_400


async def run(n: int) -> dict[str, float | int]:
    from wechat_kf import AsyncWeChat
    from wechat_kf.testing import FakeWeChat

    fake = FakeWeChat()
    for i in range(n):
        fake.add_record(
            f"oREC{i % 500:024d}",
            2002 if i % 3 else 2001,
            "您好，请问有什么可以帮您？" if i % 2 else "Thanks, my order number is 12345.",
            worker="kf2001@gh_test" if i % 3 else "",
            time=T0 + i * SPAN // n,
        )
    with fake.serve() as server:
        async with AsyncWeChat(fake.appid, fake.secret, base_url=server.base_url) as wx:
            await wx.access_token()
            before = rss_mb()
            seen = 0
            started, cpu = time.perf_counter(), time.process_time()
            async for _record in wx.records.iter(T0, T0 + SPAN):
                seen += 1
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if seen != n:
        raise RuntimeError(f"iterated {seen} of {n} records")
    return {
        "records": n,
        "records_per_second": round(n / elapsed),
        # The process (client and fake, pinned to one core) per CPU-second: what an idle core
        # does, which a busy shared machine disturbs less than the wall-clock rate.
        "records_per_cpu_second": round(n / cpu),
        "seconds": round(elapsed, 2),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    backend = sys.argv[2] if len(sys.argv) > 2 else "asyncio"
    result = anyio.run(run, n, backend=backend)
    print(json.dumps({"backend": backend, **result}))


if __name__ == "__main__":
    main()
