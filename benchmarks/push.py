"""``python -m benchmarks.push``: the receiving side, measured against bare Starlette.

Two measurements, no timing asserted anywhere (targets print PASS/MISS):

* **Encrypted pushes through Starlette under uvicorn** (``_push_app.py``, its own process and
  core): every push a new safe-mode text message (its own ``MsgId``, so none is a duplicate),
  signed and encrypted by this client, posted with ``C`` keep-alive connections by a minimal
  raw HTTP/1.1 client (a few µs per request, so that the server is what is measured). The same
  requests go to bare Starlette answering ``success`` (without reading the body, and after
  reading it) on the same server, interleaved, medians of ``--reps``. The figure is pushes per
  CPU-second of the server process (its CPU time over the run), which does not depend on how
  fast the client is; the wall-clock rate is shown beside it. Target: the encrypted push
  reaches >= 0.6x bare Starlette's pushes per CPU-second (issue 12).
* **A hostile push** (in this process): a 234 KB body of 60,000 empty elements posted to
  ``CallbackEndpoint.answer``, in safe mode with a forged ``msg_signature`` and in plain mode
  with a captured (valid) query string; the event-loop time it takes to refuse it (median) and
  the memory the refusal allocates at its peak (issue 10, point 6).

Options: ``-n`` pushes per measurement (default 4000), ``--reps`` (default 3), ``-c``
connections (default 16), ``--quick`` (small n, one repetition), ``--out`` (results directory:
``push.json`` and ``push.md``, ``*-quick.*`` for a quick run).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import hashlib
import json
import os
import statistics
import struct
import sys
import time
import tracemalloc
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._processes import server_process
from benchmarks._push_app import APPID, KEY, TOKEN

RESULTS = Path(__file__).parent / "results"
ACCOUNT = "gh_0123456789ab"
OPENID = "oBENCH_0123456789abcdefghijk"
CONTENT = "你好，我想查询一下我的订单什么时候发货"
ROUTES = ("wechat", "bare", "bare-read")
LABELS = {
    "wechat": "encrypted push, wechat_kf.callback.starlette",
    "bare": "bare Starlette answering success",
    "bare-read": "bare Starlette, body read, answering success",
}
TARGET = 0.6


# --------------------------------------------------------------------------- what WeChat sends


def _signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _encrypt(message: bytes) -> str:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(KEY + "=")
    plain = os.urandom(16) + struct.pack(">I", len(message)) + message + APPID.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def push_requests(path: str, first_id: int, n: int) -> list[bytes]:
    """``n`` complete HTTP/1.1 requests, each a new encrypted text push (from ``first_id``)."""
    now = str(int(time.time()))
    requests = []
    for msg_id in range(first_id, first_id + n):
        message = (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{CONTENT}]]></Content><MsgId>{msg_id}</MsgId></xml>"
        ).encode()
        encrypted = _encrypt(message)
        nonce = str(1_000_000_000 + msg_id % 1_000_000_000)
        query = urllib.parse.urlencode(
            {
                "signature": _signature(TOKEN, now, nonce),
                "timestamp": now,
                "nonce": nonce,
                "openid": OPENID,
                "encrypt_type": "aes",
                "msg_signature": _signature(TOKEN, now, nonce, encrypted),
            }
        )
        body = (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        ).encode()
        head = (
            f"POST /{path}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


# --------------------------------------------------------------------------- the client


async def _connection(port: int, requests: Iterator[bytes], answers: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            at = head.lower().find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)]) if at >= 0 else 0
            body = await reader.readexactly(length)
            if status != 200 or body != b"success":
                raise RuntimeError(f"unexpected answer {status} {body[:80]!r}")
            answers.append(status)
    finally:
        writer.close()


async def drive(port: int, requests: list[bytes], c: int) -> float:
    """Send every request over ``c`` keep-alive connections; return the wall seconds."""
    items = iter(requests)
    answers: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, items, answers) for _ in range(c)))
    wall = time.perf_counter() - started
    assert len(answers) == len(requests)
    return wall


def server_stats(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=5) as answer:
        stats: dict[str, float] = json.loads(answer.read())
        return stats


def measure(port: int, requests: list[bytes], c: int) -> dict[str, float]:
    gc.collect()
    before = server_stats(port)
    wall = asyncio.run(drive(port, requests, c))
    after = server_stats(port)
    cpu = after["cpu"] - before["cpu"]
    return {
        "wall_rate": len(requests) / wall,
        "per_cpu_second": len(requests) / cpu if cpu else float("inf"),
        "cpu_us": cpu / len(requests) * 1e6,
        "server_busy": cpu / wall,
    }


@contextmanager
def push_server(cpu: int | None) -> Iterator[int]:
    """The Starlette push app under uvicorn, in its own process; its port."""
    with server_process("benchmarks._push_app", cpu=cpu) as port:
        yield port


def throughput(n: int, reps: int, c: int, server_cpu: int | None, log: Any) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {route: [] for route in ROUTES}
    next_id = 1
    with push_server(server_cpu) as port:
        for route in ROUTES:  # warm-up: imports, first connections, caches
            asyncio.run(drive(port, push_requests(route, next_id, 200), c))
            next_id += 200
        for rep in range(reps):
            shift = rep % len(ROUTES)
            for route in ROUTES[shift:] + ROUTES[:shift]:
                requests = push_requests(route, next_id, n)
                next_id += n
                result = measure(port, requests, c)
                samples[route].append(result)
                log(
                    f"  rep {rep + 1} {LABELS[route]}: {result['per_cpu_second']:,.0f} "
                    f"pushes per server CPU-second ({result['cpu_us']:.0f} µs), "
                    f"{result['wall_rate']:,.0f}/s wall, server {result['server_busy']:.0%} busy"
                )
    medians = {
        route: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for route, runs in samples.items()
    }
    return {"samples": samples, "medians": medians}


# --------------------------------------------------------------------------- the hostile push


def hostile(repeat: int) -> dict[str, Any]:
    """Refusing 60,000 empty elements before authentication: event-loop time and peak memory."""
    from wechat_kf.callback import CallbackEndpoint, CallbackHandler

    async def on_message(incoming: object) -> None:
        raise AssertionError("a hostile push reached on_message")

    now = str(int(time.time()))
    query = {
        "signature": _signature(TOKEN, now, "1234"),
        "timestamp": now,
        "nonce": "1234",
        "openid": OPENID,
    }
    elements = b"<a/>" * 60_000
    cases = {
        # safe mode: a forged msg_signature over a forged Encrypt, inside 60,000 elements
        "safe mode, forged msg_signature": (
            KEY,
            {**query, "encrypt_type": "aes", "msg_signature": "0" * 40},
            b"<xml>" + elements + b"<Encrypt>AAAA</Encrypt></xml>",
        ),
        # plain mode: a captured query string (valid signature), a forged body
        "plain mode, captured query": (None, query, b"<xml>" + elements + b"</xml>"),
    }
    results: dict[str, Any] = {}
    for label, (key, case_query, body) in cases.items():
        handler = CallbackHandler(
            token=TOKEN, appid=APPID, encoding_aes_key=key, timestamp_window=300
        )
        endpoint = CallbackEndpoint(handler, on_message)

        async def once(q: dict[str, str] = case_query, b: bytes = body, e: Any = endpoint) -> Any:
            return await e.answer("POST", q, b)

        async def run() -> tuple[list[float], Any]:
            times = []
            answer = None
            for _ in range(repeat):
                started = time.perf_counter()
                answer = await once()
                times.append(time.perf_counter() - started)
            return times, answer

        import logging

        logging.getLogger("wechat_kf.callback").setLevel(logging.ERROR)  # the refusals
        times, answer = asyncio.run(run())
        tracemalloc.start()
        asyncio.run(once())
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        results[label] = {
            "bytes": len(body),
            "status": answer.status,
            "median_us": statistics.median(times) * 1e6,
            "max_us": max(times) * 1e6,
            "peak_bytes": peak,
        }
    return results


# --------------------------------------------------------------------------- report


def render(results: dict[str, Any]) -> str:
    medians = results["throughput"]["medians"]
    s = results["settings"]
    lines = [
        f"Receiving side: Starlette {results['versions']['starlette']} under uvicorn "
        f"{results['versions']['uvicorn']} (one process, its own core), N={s['n']} new "
        f"encrypted text pushes per measurement over C={s['c']} keep-alive connections, "
        f"median of {s['reps']} interleaved runs.",
        "",
        "| route | pushes per server CPU-second | server CPU per push | wall pushes/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    bare = medians["bare"]["per_cpu_second"]
    for route in ROUTES:
        m = medians[route]
        lines.append(
            f"| {LABELS[route]} | {m['per_cpu_second']:,.0f} | {m['cpu_us']:.0f} µs | "
            f"{m['wall_rate']:,.0f} | {m['per_cpu_second'] / bare:.2f}× |"
        )
    ratio = medians["wechat"]["per_cpu_second"] / bare
    verdict = "PASS" if ratio >= TARGET else "MISS"
    lines += [
        "",
        f"- {verdict}: encrypted push >= {TARGET}x bare Starlette's pushes per CPU-second: "
        f"{ratio:.2f}x (against bare Starlette reading the body: "
        f"{medians['wechat']['per_cpu_second'] / medians['bare-read']['per_cpu_second']:.2f}x)",
        "",
        "Hostile push (60,000 empty elements, refused before on_message; in-process "
        "CallbackEndpoint.answer, median event-loop time):",
        "",
    ]
    for label, h in results["hostile"].items():
        lines.append(
            f"- {label}: {h['bytes'] / 1024:.0f} KB, HTTP {h['status']}, "
            f"{h['median_us']:,.0f} µs (max {h['max_us']:,.0f} µs), "
            f"peak {h['peak_bytes'] / 1e6:.2f} MB allocated"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.push", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run, a few seconds")
    parser.add_argument("-n", type=int, help="pushes per measurement (default 4000)")
    parser.add_argument("--reps", type=int, help="repetitions; medians are reported (default 3)")
    parser.add_argument("-c", type=int, default=16, help="connections (default 16)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    args = parser.parse_args()
    n = args.n or (500 if args.quick else 4000)
    reps = args.reps or (1 if args.quick else 3)

    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    client_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})

    def log(line: str) -> None:
        print(line, flush=True)

    from importlib.metadata import version

    log(f"encrypted pushes: N={n}, C={args.c}, reps={reps}")
    results: dict[str, Any] = {
        "settings": {"n": n, "reps": reps, "c": args.c, "quick": args.quick},
        "versions": {p: version(p) for p in ("starlette", "uvicorn", "cryptography")},
        "python": sys.version.split()[0],
        "throughput": throughput(n, reps, args.c, server_cpu, log),
    }
    log("hostile push")
    results["hostile"] = hostile(repeat=5 if args.quick else 21)
    text = render(results)
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    (args.out / f"push{suffix}.json").write_text(json.dumps(results, indent=2))
    (args.out / f"push{suffix}.md").write_text(text + "\n")
    print(f"\nwrote {args.out}/push{suffix}.json, push{suffix}.md")


if __name__ == "__main__":
    main()
