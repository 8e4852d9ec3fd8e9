"""An httpx transport that hands requests straight to a :class:`FakeWeChat` (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import h11
import httpx

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

__all__ = ["FakeTransport"]


def _latin1(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    """Headers as bytes, as they travel on the wire (values beyond ASCII included)."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def parse_raw_answer(raw: bytes, request: httpx.Request) -> httpx.Response:
    """Read ``raw`` as an HTTP/1.1 client reads an answer that ends with the connection.

    Malformed framing (a bad status line, ``Content-Length: abc``, a body cut short) raises
    ``httpx.RemoteProtocolError``, as httpx's own transport does.
    """
    connection = h11.Connection(h11.CLIENT)
    connection.send(
        h11.Request(method=request.method, target=request.url.raw_path, headers=[("Host", "x")])
    )
    connection.send(h11.EndOfMessage())
    connection.receive_data(raw)
    connection.receive_data(b"")  # the fake closes the connection after a raw answer
    head: h11.Response | None = None
    body = bytearray()
    try:
        while True:
            event = connection.next_event()
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed) or event is h11.NEED_DATA:
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body",
                    request=request,
                )
    except h11.RemoteProtocolError as exc:
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc
    assert head is not None
    return httpx.Response(
        head.status_code,
        headers=list(head.headers.raw_items()),
        content=bytes(body),
        request=request,
        extensions={"reason_phrase": head.reason, "http_version": b"HTTP/1.1"},
    )


class FakeTransport(httpx.AsyncBaseTransport):
    """Answers in-process, honouring the request's read timeout for delayed replies."""

    def __init__(self, fake: FakeWeChat) -> None:
        self.fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` as the fake WeChat does (httpx's transport interface)."""
        body = await request.aread()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers.raw}
        reply = self.fake.handle(
            request.method,
            request.url.path,
            request.url.query.decode("ascii"),
            headers,
            body,
        )
        if reply.connect_error:
            raise httpx.ConnectError("[Errno 111] Connection refused (injected)", request=request)
        if reply.delay:
            timeouts = request.extensions.get("timeout", {})
            read_timeout = timeouts.get("read")
            if read_timeout is not None and read_timeout < reply.delay:
                await anyio.sleep(read_timeout)
                raise httpx.ReadTimeout("timed out (injected delay)", request=request)
            await anyio.sleep(reply.delay)
        if reply.reset:
            raise httpx.ReadError("[Errno 104] Connection reset (injected)", request=request)
        if reply.raw is not None:
            return parse_raw_answer(reply.raw, request)
        if reply.truncate:
            length = (b"Content-Length", str(len(reply.body)).encode())
            return httpx.Response(
                reply.status,
                headers=[*_latin1(reply.headers), length],
                stream=_Truncated(reply.body[: len(reply.body) // 2], request),
                request=request,
            )
        return httpx.Response(
            reply.status, headers=_latin1(reply.headers), content=reply.body, request=request
        )


class _Truncated(httpx.AsyncByteStream):
    """Half a body, then the connection drops."""

    def __init__(self, head: bytes, request: httpx.Request) -> None:
        self._head = head
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        raise httpx.ReadError(
            "[Errno 104] Connection reset mid-body (injected)", request=self._request
        )
