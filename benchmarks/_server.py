"""A minimal, fast loopback HTTP/1.1 server that answers like WeChat and validates nothing.

Run in its own process (``python -m benchmarks._server``); it prints ``PORT <n>`` once it
listens. Answers:

* ``POST /cgi-bin/message/custom/send`` -> ``{"errcode":0,"errmsg":"ok"}``
* ``POST /cgi-bin/stable_token`` and ``GET /cgi-bin/token`` -> a token, ``expires_in`` 7200
* ``POST /cgi-bin/media/upload`` -> ``{"type": "image", "media_id": ..., "created_at": now}``
* ``GET /_stats`` -> ``{"requests", "tokens", "uploads", "connections", "cpu"}``: requests
  served, token requests, uploads, connections accepted, and this process's CPU seconds (the
  benchmark derives the server's ceiling from them)

Everything else answers the send reply. Keep-alive always; pipelined requests are answered in
order. No parsing beyond the request line and ``Content-Length``.

``--latency MS`` answers every send MS milliseconds after it arrived (as WeChat's round trip
would), token and stats requests at once; answers on one connection keep their order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import time
from collections import deque


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode("ascii") + body


SEND_REPLY = _response(b'{"errcode":0,"errmsg":"ok"}')
TOKEN_REPLY = _response(
    json.dumps({"access_token": "BENCH_" + "t" * 120, "expires_in": 7200}).encode()
)


def _upload_reply() -> bytes:
    media_id = f"BENCH_MEDIA_{Stats.uploads:04d}_" + "m" * 44
    created = int(time.time())
    return _response(
        json.dumps({"type": "image", "media_id": media_id, "created_at": created}).encode()
    )


class Stats:
    requests = 0
    tokens = 0
    uploads = 0
    connections = 0
    #: Seconds every send is delayed by (``--latency``).
    latency = 0.0


class BenchProtocol(asyncio.Protocol):
    __slots__ = ("buf", "pending", "transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""
        #: Delayed answers, due time first, in request order.
        self.pending: deque[tuple[float, bytes]] = deque()
        Stats.connections += 1

    def _delay(self, answer: bytes) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + Stats.latency
        if not self.pending:
            loop.call_at(due, self._flush)
        self.pending.append((due, answer))

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        pending = self.pending
        out = []
        while pending and pending[0][0] <= now:
            out.append(pending.popleft()[1])
        if out and not self.transport.is_closing():
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]
        if pending:
            loop.call_at(pending[0][0], self._flush)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            length = 0
            at = head.find(b"ength:")  # Content-Length / content-length
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 6 : stop if stop >= 0 else None])
            total = end + 4 + length
            if len(buf) < total:
                break
            line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
            path = line.split(b" ", 2)[1].partition(b"?")[0] if b" " in line else b""
            Stats.requests += 1
            if path.endswith(b"token"):  # not the access_token in a send's query
                Stats.tokens += 1
                out.append(TOKEN_REPLY)
            elif path.endswith(b"media/upload"):
                Stats.uploads += 1
                out.append(_upload_reply())
            elif path == b"/_stats":
                body = json.dumps(
                    {
                        "requests": Stats.requests,
                        "tokens": Stats.tokens,
                        "uploads": Stats.uploads,
                        "connections": Stats.connections,
                        "cpu": time.process_time(),
                    }
                ).encode()
                out.append(_response(body))
            elif Stats.latency or self.pending:
                if out:  # answers keep their order on one connection
                    if self.pending:
                        self._delay(b"".join(out))
                    else:
                        self.transport.write(b"".join(out))  # type: ignore[attr-defined]
                    out = []
                self._delay(SEND_REPLY)
            else:
                out.append(SEND_REPLY)
            buf = buf[total:]
        self.buf = buf
        if out and self.pending:
            self._delay(b"".join(out))
        elif out:
            self.transport.write(b"".join(out) if len(out) > 1 else out[0])  # type: ignore[attr-defined]


def raise_file_limit() -> None:
    """Raise the open-files limit to its hard maximum (C = 1024 needs more than 1024 sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BenchProtocol, host, port, backlog=4096)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--latency", type=float, default=0.0, help="delay every send (ms)")
    args = parser.parse_args()
    Stats.latency = args.latency / 1000
    raise_file_limit()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
