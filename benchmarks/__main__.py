"""``python -m benchmarks``: every client side by side on one loopback server, in one run.

See benchmarks/README.md. ``--quick`` is a smoke run (under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import _clients, _extras, _report

RESULTS = Path(__file__).parent / "results"


@contextmanager
def bench_server(cpu: int | None) -> Iterator[str]:
    """Start the minimal server in its own process; yield its base URL."""
    command = [sys.executable, "-m", "benchmarks._server"]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"benchmark server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        server.terminate()
        server.wait(10)


def server_stats(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/_stats", timeout=5) as answer:
        stats: dict[str, float] = json.loads(answer.read())
        return stats


#: (key, label, transport, runner(base, c, n) -> msgs/s)
Runner = Callable[[str, int, int], float]


def clients() -> list[tuple[str, str, str, Runner]]:
    def run(coro_fn: Any, **kw: Any) -> Runner:
        return lambda base, c, n: asyncio.run(coro_fn(base, c, n, **kw))

    return [
        (
            "raw_httpx",
            "raw httpx (pool sized)",
            "httpx",
            run(_clients.raw_httpx, transport="httpx"),
        ),
        ("wx_send_httpx", "wx.message.send", "httpx", run(_clients.wx_send, transport="httpx")),
        ("send_many_httpx", "send_many", "httpx", run(_clients.wx_send_many, transport="httpx")),
        (
            "raw_httpx_aiohttp",
            "raw httpx + aiohttp transport",
            "aiohttp",
            run(_clients.raw_httpx, transport="aiohttp"),
        ),
        (
            "wx_send_aiohttp",
            "wx.message.send",
            "aiohttp",
            run(_clients.wx_send, transport="aiohttp"),
        ),
        (
            "send_many_aiohttp",
            "send_many",
            "aiohttp",
            run(_clients.wx_send_many, transport="aiohttp"),
        ),
        ("raw_aiohttp", "raw aiohttp (reference)", "aiohttp", run(_clients.raw_aiohttp)),
    ]


def measure_ceiling(base: str, n: int) -> dict[str, float]:
    """The server's own ceiling: requests per CPU-second it spends, under the fastest client."""
    best: dict[str, float] = {}
    for c in (64, 256):
        before = server_stats(base)
        started = time.perf_counter()
        rate = asyncio.run(_clients.raw_aiohttp(base, c, n))
        wall = time.perf_counter() - started
        after = server_stats(base)
        cpu = after["cpu"] - before["cpu"]
        requests = after["requests"] - before["requests"]
        result = {
            "client_rate": rate,
            "concurrency": c,
            "server_requests_per_cpu_second": requests / cpu if cpu else float("inf"),
            "server_utilisation": cpu / wall,
        }
        if result["client_rate"] > best.get("client_rate", 0):
            best = result
    return best


def run_matrix(
    base: str, *, n: int, reps: int, concurrency: list[int], threads: list[int], log: Any
) -> dict[str, Any]:
    """Every client at every C, ``reps`` times, interleaved; the order rotates each rep."""
    table = clients()
    samples: dict[str, dict[int, list[float]]] = {key: {} for key, *_ in table}
    samples.update({f"wechatpy_{t}": {} for t in threads})
    utilisation: list[float] = []
    for rep in range(reps):
        log(f"repetition {rep + 1}/{reps}")
        for c in concurrency:
            shift = rep % len(table)
            for key, label, transport, runner in table[shift:] + table[:shift]:
                gc.collect()
                before = server_stats(base)
                started = time.perf_counter()
                rate = runner(base, c, n)
                wall = time.perf_counter() - started
                after = server_stats(base)
                utilisation.append((after["cpu"] - before["cpu"]) / wall)
                samples[key].setdefault(c, []).append(rate)
                log(f"  C={c:<4} {label} [{transport}]: {rate:,.0f} msgs/s")
        for t in threads:
            gc.collect()
            rate = _clients.wechatpy_threads(base, t, n)
            samples[f"wechatpy_{t}"].setdefault(t, []).append(rate)
            log(f"  wechatpy, {t} threads: {rate:,.0f} msgs/s")
    medians = {
        key: {c: statistics.median(values) for c, values in by_c.items()}
        for key, by_c in samples.items()
    }
    labels = {key: (label, transport) for key, label, transport, _ in table}
    return {
        "samples": samples,
        "medians": medians,
        "labels": labels,
        "max_server_utilisation": max(utilisation, default=0.0),
    }


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    packages = ("httpx", "httpcore", "aiohttp", "httpx-aiohttp", "anyio", "wechatpy")
    versions = {package: installed(package) for package in packages}
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    parser.add_argument("-n", type=int, help="messages per measurement (default 3000)")
    parser.add_argument("--reps", type=int, help="repetitions; medians are reported (default 3)")
    parser.add_argument("--recipients", type=int, help="streaming memory run (default 1,000,000)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument(
        "--media-only",
        action="store_true",
        help="only send_many of a picture from a file vs by a known media_id (results-media.*)",
    )
    args = parser.parse_args()
    if args.media_only:
        media_only(args.n or 3000, args.reps or 7, args.out)
        return

    quick = args.quick
    n = args.n or (400 if quick else 3000)
    reps = args.reps or (1 if quick else 3)
    concurrency = [1, 16, 64] if quick else [1, 16, 64, 256]
    threads = [8] if quick else [8, 32]
    recipients = args.recipients or (50_000 if quick else 1_000_000)
    cold_callers = 1_000 if quick else 10_000

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # one client core; the server gets another

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    env = environment()
    log(f"python {env['python']} on {env['cpu']} ({env['cpus']} CPUs); N={n}, reps={reps}")
    with bench_server(server_cpu) as base:
        ceiling = measure_ceiling(base, max(n, 2000))
        log(
            f"server ceiling: {ceiling['server_requests_per_cpu_second']:,.0f} requests per "
            f"CPU-second; raw aiohttp at C={ceiling['concurrency']:.0f} drove "
            f"{ceiling['client_rate']:,.0f} msgs/s using "
            f"{ceiling['server_utilisation']:.0%} of the server's core"
        )
        matrix = run_matrix(base, n=n, reps=reps, concurrency=concurrency, threads=threads, log=log)
        log("token single-flight")
        flights = [
            _extras.single_flight(base, cold_callers, backend) for backend in ("asyncio", "trio")
        ]
        log("send_many of a picture: from a file vs by a known media_id")
        with tempfile.TemporaryDirectory() as scratch:
            media = _extras.media_send_many(
                base, n, 16, reps, "aiohttp", Path(scratch) / "notice.jpg"
            )
    log("import time")
    imports = _extras.import_time(repeat=3 if quick else 7)
    log(f"streaming send to {recipients:,} recipients (memory)")
    memory = _extras.streaming_memory(recipients, 64)

    results = {
        "environment": env,
        "settings": {
            "n": n,
            "reps": reps,
            "concurrency": concurrency,
            "wechatpy_threads": threads,
            "quick": quick,
        },
        "server_ceiling": ceiling,
        "matrix": matrix,
        "single_flight": flights,
        "media_send_many": media,
        "import_time": imports,
        "streaming_memory": memory,
        "duration_seconds": round(time.perf_counter() - started, 1),
    }
    text = _report.render(results)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if quick else ""
    (args.out / f"results{suffix}.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / f"results{suffix}.md").write_text(text + "\n")
    chart = _report.chart(results, args.out / f"throughput{suffix}.png")
    print(
        f"\nwrote {args.out}/results{suffix}.json, results{suffix}.md"
        + (f", {chart.name}" if chart else "")
    )


def media_only(n: int, reps: int, out: Path) -> None:
    """The picture comparison alone, on the pinned server and client cores as in a full run."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    with bench_server(server_cpu) as base, tempfile.TemporaryDirectory() as scratch:
        media = _extras.media_send_many(base, n, 16, reps, "aiohttp", Path(scratch) / "notice.jpg")
    results = {"environment": environment(), "media_send_many": media}
    text = _report.render_media(media)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results-media.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results-media.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
