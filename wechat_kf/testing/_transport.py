"""An httpx transport that hands requests straight to a :class:`FakeWeChat` (no sockets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import httpx

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

__all__ = ["FakeTransport"]


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
        return httpx.Response(
            reply.status, headers=list(reply.headers), content=reply.body, request=request
        )
