"""A small, fast HTTP/1.1 server that puts a :class:`FakeWeChat` on a real loopback port.

It runs an asyncio loop in a background thread, so it serves clients on any async library (or
none), keeps connections alive, and applies the fake's scripted delays and resets on the wire.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

from wechat_kf.testing._core import FakeReply

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

__all__ = ["FakeServer"]

_MAX_HEAD: Final = 64 * 1024
_MAX_BODY: Final = 16 * 1024 * 1024
_REASONS: Final = {status.value: status.phrase for status in HTTPStatus}


class _BadRequest(Exception):
    pass


def _parse(buf: bytearray) -> tuple[tuple[str, str, str, dict[str, str], bytes, bool], int] | None:
    """Parse one request from ``buf``: ``((method, path, query, headers, body, keep_alive), n)``."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > _MAX_HEAD:
            raise _BadRequest("head too large")
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise _BadRequest("bad request line") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parsed = _parse_chunked(buf, start)
        if parsed is None:
            return None
        body, consumed = parsed
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest("bad content-length") from None
        if length < 0 or length > _MAX_BODY:
            raise _BadRequest("bad content-length")
        if len(buf) < start + length:
            return None
        body, consumed = bytes(buf[start : start + length]), start + length
    path, _, query = target.partition("?")
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return (method, path, query, headers, body, keep_alive), consumed


def _parse_chunked(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    body = bytearray()
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
        except ValueError:
            raise _BadRequest("bad chunk size") from None
        pos = line_end + 2
        if size == 0:
            trailer_end = buf.find(b"\r\n", pos)
            while trailer_end > pos:  # skip trailer headers
                pos = trailer_end + 2
                trailer_end = buf.find(b"\r\n", pos)
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 2
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos : pos + size]
        if len(body) > _MAX_BODY:
            raise _BadRequest("body too large")
        pos += size + 2


def _render(reply: FakeReply, keep_alive: bool) -> bytes:
    head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Unknown')}"]
    head += [f"{name}: {value}" for name, value in reply.headers]
    head.append(f"Content-Length: {len(reply.body)}")
    head.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body


class _Connection(asyncio.Protocol):
    def __init__(self, fake: FakeWeChat, server: FakeServer) -> None:
        self._fake = fake
        self._server = server
        self._buf = bytearray()
        self._busy = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections_made += 1
        self._server.live.add(self)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._drain()

    def _drain(self) -> None:
        transport = self._transport
        while not self._busy and transport is not None and not transport.is_closing():
            try:
                parsed = _parse(self._buf)
            except _BadRequest:
                transport.write(_render(FakeReply(status=400, body=b"bad request"), False))
                transport.close()
                return
            if parsed is None:
                return
            (method, path, query, headers, body, keep_alive), consumed = parsed
            del self._buf[:consumed]
            reply = self._fake.handle(method, path, query, headers, body)
            if reply.delay:
                self._busy = True
                asyncio.get_running_loop().call_later(reply.delay, self._finish, reply, keep_alive)
                return
            self._finish(reply, keep_alive)

    def _finish(self, reply: FakeReply, keep_alive: bool) -> None:
        self._busy = False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if reply.reset or reply.connect_error:
            sock = transport.get_extra_info("socket")
            if sock is not None:  # RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        if reply.raw is not None:  # any framing: the connection cannot carry another answer
            transport.write(reply.raw)
            transport.close()
            return
        if reply.truncate:  # the head and half the body, then RST
            rendered = _render(reply, keep_alive)
            transport.write(rendered[: len(rendered) - (len(reply.body) + 1) // 2])
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        transport.write(_render(reply, keep_alive))
        if not keep_alive:
            transport.close()
        elif self._buf:
            self._drain()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server.live.discard(self)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class FakeServer:
    """A :class:`FakeWeChat` served on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, fake: FakeWeChat, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self.host = host
        self.port: int = port
        #: How many TCP connections clients opened (keep-alive tests assert on it).
        self.connections_made = 0
        self.live: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port``: pass it as ``AsyncWeChat(base_url=...)``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread; returns once the port is listening."""
        self._thread = threading.Thread(target=self._run, name="FakeWeChatServer", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            server = loop.run_until_complete(
                loop.create_server(
                    lambda: _Connection(self.fake, self), self.host, self.port, backlog=1024
                )
            )
            self.port = server.sockets[0].getsockname()[1]
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            for connection in list(self.live):
                connection.abort()
            loop.run_until_complete(asyncio.wait_for(server.wait_closed(), 5))
            loop.close()

    def __repr__(self) -> str:
        return f"FakeServer({self.base_url})"
