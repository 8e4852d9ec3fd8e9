"""``python -m benchmarks``: every client side by side on one loopback server, in one run.

See benchmarks/README.md. ``--quick`` is a smoke run; ``--latency MS`` makes the server answer
every send MS milliseconds late (as WeChat's round trip does) and measures against C/RTT.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs

from benchmarks import _clients, _extras, _report
from benchmarks._clients import Budget, Result
from benchmarks._processes import server_process
from benchmarks._server import raise_file_limit

RESULTS = Path(__file__).parent / "results"


# --------------------------------------------------------------------------- the clients


@attrs.frozen
class Client:
    """One row of the table: a client, on one transport, on one async library."""

    key: str
    label: str
    transport: str
    backend: str
    run: Callable[[str, int, Budget], Result] = attrs.field(eq=False, repr=False)


def _on(backend: str, coro_fn: Any, **kw: Any) -> Callable[[str, int, Budget], Result]:
    def run(base: str, c: int, budget: Budget) -> Result:
        result: Result = anyio.run(lambda: coro_fn(base, c, budget, **kw), backend=backend)
        return result

    return run


def clients(*, latency: bool) -> list[Client]:
    """The table's rows. Under latency: the bulk send only (``send_many``), every transport."""
    rows = [
        Client(
            "raw_aiohttp",
            "raw aiohttp (reference)",
            "-",
            "asyncio",
            _on("asyncio", _clients.raw_aiohttp),
        )
    ]
    rows += [
        Client(
            f"raw_httpx/{backend}",
            "raw httpx (its own pool, sized to C)",
            "-",
            backend,
            _on(backend, _clients.raw_httpx),
        )
        for backend in ("asyncio", "trio")
    ]
    if not latency:
        rows.append(
            Client(
                "raw_httpx_aiohttp/asyncio",
                "raw httpx on httpx-aiohttp",
                "-",
                "asyncio",
                _on("asyncio", _clients.raw_httpx, transport="aiohttp"),
            )
        )
    kinds = [("send_many", "wx.message.send_many", _clients.wx_send_many)]
    if not latency:
        kinds.insert(0, ("send", "wx.message.send, C workers", _clients.wx_send))
    per_backend = (("asyncio", ("aiohttp", "anyio")), ("trio", ("anyio",)))  # ("httpx" = "anyio")
    rows += [
        Client(
            f"{name}/{transport}/{backend}",
            label,
            transport,
            backend,
            _on(backend, coro_fn, transport=transport),
        )
        for name, label, coro_fn in kinds
        for backend, transports in per_backend
        for transport in transports
    ]
    return rows


# --------------------------------------------------------------------------- sections
#
# The measurements beside the throughput table. Each is a Section: ``run(context)`` returns a
# JSON-ready dict stored under ``key`` in results.json, ``render(result)`` the report's lines,
# ``checks(result)`` its targets. Add one by appending it to SECTIONS.


@attrs.frozen
class Context:
    """What a section may use: the loopback server, the run's settings, a logger."""

    base: str
    quick: bool
    log: Callable[[str], None]


@attrs.frozen
class Section:
    key: str
    title: str
    run: Callable[[Context], dict[str, Any]]
    render: Callable[[dict[str, Any]], list[str]]
    checks: Callable[[dict[str, Any]], list[_report.Check]] = lambda result: []


def _single_flight(ctx: Context) -> dict[str, Any]:
    callers = 1_000 if ctx.quick else 10_000
    return {"runs": [_extras.single_flight(ctx.base, callers, b) for b in ("asyncio", "trio")]}


def _imports(ctx: Context) -> dict[str, Any]:
    return _extras.import_time(repeat=3 if ctx.quick else 7)


def _memory(ctx: Context) -> dict[str, Any]:
    return _extras.streaming_memory(50_000 if ctx.quick else 1_000_000, 64)


def _media(ctx: Context) -> dict[str, Any]:
    n, reps = (400, 1) if ctx.quick else (3000, 7)
    with tempfile.TemporaryDirectory() as scratch:
        return _extras.media_send_many(ctx.base, n, 16, reps, "aiohttp", Path(scratch) / "x.jpg")


def _records(ctx: Context) -> dict[str, Any]:
    n = 50_000 if ctx.quick else 300_000
    return {"runs": [_extras.records_iter(n, backend) for backend in ("asyncio", "trio")]}


SECTIONS: list[Section] = [
    Section(
        "single_flight",
        "token single-flight",
        _single_flight,
        _report.render_single_flight,
    ),
    Section(
        "media_send_many",
        "send_many of a picture: from a file vs by a known media_id",
        _media,
        _report.render_media,
        _report.check_media,
    ),
    Section("import_time", "import time", _imports, _report.render_imports),
    Section(
        "streaming_memory",
        "streaming send (memory)",
        _memory,
        _report.render_memory,
        _report.check_memory,
    ),
    Section("records", "records.iter", _records, _report.render_records, _report.check_records),
]


# --------------------------------------------------------------------------- the server


@contextmanager
def bench_server(cpu: int | None, latency_ms: float) -> Iterator[str]:
    """Start the minimal server in its own process; yield its base URL."""
    with server_process("benchmarks._server", "--latency", str(latency_ms), cpu=cpu) as port:
        yield f"http://127.0.0.1:{port}"


def server_stats(base: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{base}/_stats", timeout=5) as answer:
        stats: dict[str, float] = json.loads(answer.read())
        return stats


def measure_ceiling(base: str, budget: Budget) -> dict[str, float]:
    """The server's own ceiling: requests per CPU-second it spends, under the fastest client."""
    best: dict[str, float] = {}
    for c in (64, 256):
        before = server_stats(base)
        started = time.perf_counter()
        rate, _ = anyio.run(_clients.raw_aiohttp, base, c, budget)
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


# --------------------------------------------------------------------------- the matrix


def run_matrix(
    base: str,
    *,
    table: list[Client],
    budget: Callable[[int], Budget],
    reps: int,
    concurrency: list[int],
    threads: list[int],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Every client at every C, ``reps`` times, interleaved; the order rotates each rep."""
    samples: dict[str, dict[int, list[float]]] = {client.key: {} for client in table}
    samples.update({f"wechatpy_{t}": {} for t in threads})
    cpu: dict[str, dict[int, list[float]]] = {key: {} for key in samples}
    utilisation: list[float] = []
    for rep in range(reps):
        log(f"repetition {rep + 1}/{reps}")
        for c in concurrency:
            shift = rep % len(table)
            for client in table[shift:] + table[:shift]:
                gc.collect()
                before = server_stats(base)
                started = time.perf_counter()
                rate, micros = client.run(base, c, budget(c))
                wall = time.perf_counter() - started
                after = server_stats(base)
                utilisation.append((after["cpu"] - before["cpu"]) / wall)
                samples[client.key].setdefault(c, []).append(rate)
                cpu[client.key].setdefault(c, []).append(micros)
                where = f"{client.label} [{client.transport}, {client.backend}]"
                log(f"  C={c:<4} {where}: {rate:,.0f} msgs/s, {micros:.0f} µs CPU/msg")
        for t in threads:
            gc.collect()
            rate, micros = _clients.wechatpy_threads(base, t, budget(t))
            samples[f"wechatpy_{t}"].setdefault(t, []).append(rate)
            cpu[f"wechatpy_{t}"].setdefault(t, []).append(micros)
            log(f"  wechatpy, {t} threads: {rate:,.0f} msgs/s")

    def medians(of: dict[str, dict[int, list[float]]]) -> dict[str, dict[int, float]]:
        return {
            key: {c: statistics.median(values) for c, values in by_c.items()}
            for key, by_c in of.items()
        }

    return {
        "samples": samples,
        "medians": medians(samples),
        "cpu_samples": cpu,
        "cpu_medians": medians(cpu),
        "rows": [
            {"key": c.key, "label": c.label, "transport": c.transport, "backend": c.backend}
            for c in table
        ],
        "max_server_utilisation": max(utilisation, default=0.0),
    }


def environment() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str | None:
        try:
            return version(package)
        except PackageNotFoundError:
            return None

    packages = ("httpx", "httpcore", "aiohttp", "httpx-aiohttp", "anyio", "trio", "wechatpy")
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
    parser.add_argument("--quick", action="store_true", help="smoke run, a minute or two")
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="MS", help="server delays every send (ms)"
    )
    parser.add_argument("-n", type=int, help="at most this many messages per measurement")
    parser.add_argument("--seconds", type=float, help="at most this long per measurement")
    parser.add_argument("--reps", type=int, help="repetitions; medians are reported (default 3)")
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
    latency = args.latency
    reps = args.reps or (1 if quick else 3)
    seconds = args.seconds or (1.0 if quick else 3.0 if latency else 2.0)
    if latency:
        concurrency = [16, 64] if quick else [16, 64, 256, 1024]
        threads: list[int] = []

        # ~30 rounds of the round trip per worker, at most ``seconds``.
        def budget(c: int) -> Budget:
            return Budget(n=args.n or 30 * c, seconds=seconds)
    else:
        concurrency = [1, 16, 64] if quick else [1, 16, 64, 256]
        threads = [8] if quick else [8, 32]

        def budget(c: int) -> Budget:
            return Budget(n=args.n or (400 if quick else 3000), seconds=seconds)

    raise_file_limit()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})  # one client core; the server gets another

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    env = environment()
    log(
        f"python {env['python']} on {env['cpu']} ({env['cpus']} CPUs); reps={reps}, "
        f"{seconds:g} s per measurement, latency {latency:g} ms"
    )
    results: dict[str, Any] = {"environment": env}
    with bench_server(server_cpu, latency) as base:
        if not latency:
            ceiling = measure_ceiling(base, Budget(n=4000, seconds=seconds))
            results["server_ceiling"] = ceiling
            log(
                f"server ceiling: {ceiling['server_requests_per_cpu_second']:,.0f} requests per "
                f"CPU-second; raw aiohttp at C={ceiling['concurrency']:.0f} drove "
                f"{ceiling['client_rate']:,.0f} msgs/s using "
                f"{ceiling['server_utilisation']:.0%} of the server's core"
            )
        results["matrix"] = run_matrix(
            base,
            table=clients(latency=bool(latency)),
            budget=budget,
            reps=reps,
            concurrency=concurrency,
            threads=threads,
            log=log,
        )
        if not latency:
            context = Context(base=base, quick=quick, log=log)
            for section in SECTIONS:
                log(section.title)
                results[section.key] = section.run(context)
    results["settings"] = {
        "reps": reps,
        "seconds": seconds,
        "concurrency": concurrency,
        "wechatpy_threads": threads,
        "latency_ms": latency,
        "quick": quick,
    }
    results["duration_seconds"] = round(time.perf_counter() - started, 1)
    sections = [] if latency else SECTIONS
    text = _report.render(results, sections)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = (f"-latency{latency:g}" if latency else "") + ("-quick" if quick else "")
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
    with bench_server(server_cpu, 0.0) as base, tempfile.TemporaryDirectory() as scratch:
        media = _extras.media_send_many(base, n, 16, reps, "aiohttp", Path(scratch) / "x.jpg")
    results = {"environment": environment(), "media_send_many": media}
    text = "\n".join(_report.render_media(media))
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results-media.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results-media.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
