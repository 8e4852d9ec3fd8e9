"""The ``aiohttp`` extra's transport: httpx-aiohttp's, with a send-safe error mapping.

aiohttp's exceptions never leave this module: each becomes an httpx error whose text has no URL
(aiohttp's own keep the URL, access token included, in their text and ``request_info``), and
the aiohttp exception is not chained. The session keeps no cookies.

Imported only when the SDK sends through aiohttp (``AsyncWeChat(transport="aiohttp")`` on
asyncio), so that ``import wechat_kf`` never pays for importing aiohttp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport

from wechat_kf._defaults import USER_AGENT
from wechat_kf._http11 import Answer
from wechat_kf._redaction import redact

__all__ = ["AiohttpSDKTransport", "map_error"]

#: The direct path's header fields (with and without a JSON body).
_JSON_HEADERS: Final = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
_PLAIN_HEADERS: Final = {"User-Agent": USER_AGENT}

#: Distinct timeout settings whose ``aiohttp.ClientTimeout`` is kept (one per facade, usually).
_TIMEOUT_CACHE: Final = 64


def map_error(exc: BaseException, request: httpx.Request | None) -> httpx.TransportError:
    """The httpx error for an aiohttp one: "never sent" only when provably so.

    ``ConnectError``/``ConnectTimeout`` (which the pipeline may retry, even for a message send)
    only when no connection could be made or none became free in time; a read timeout stays a
    read timeout; anything else (a dropped or reset connection, a malformed answer) is an error
    after which the request may have reached WeChat.
    """
    message = _message(exc)
    cls: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ClientConnectorError):
        cls = httpx.ConnectError  # DNS, refused, TLS handshake: nothing was sent
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        cls = httpx.ConnectTimeout  # no connection (new or pooled) in time: nothing was sent
    elif isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        cls = httpx.ReadTimeout  # sent; no answer in time
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        cls = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        cls = httpx.RemoteProtocolError
    else:
        cls = httpx.ReadError  # disconnected, reset, ...: it may have reached WeChat
    return cls(message, request=request)


def _message(exc: BaseException) -> str:
    """aiohttp's text for ``exc`` without the URL some of its errors add (and the token in it)."""
    if isinstance(exc, aiohttp.ClientResponseError):  # its str() ends with url='...'
        text = exc.message if isinstance(exc.message, str) else ""
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        text = "invalid URL"  # its str() is the URL
    else:
        text = str(exc)
    return redact(text) or type(exc).__name__


class AiohttpSDKTransport(AiohttpTransport):
    """Sends through one ``aiohttp.ClientSession`` (created at the first request, in its loop).

    Keep-alive for every connection (aiohttp's connector has a single limit), the pool can grow,
    ``ClientTimeout`` objects are built once per timeout setting, and bodies are read before
    returning (WeChat's answers are small), so the connection goes back to the pool at once.
    """

    def __init__(self, max_connections: int, keepalive_expiry: float) -> None:
        super().__init__(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=keepalive_expiry,
            )
        )
        self._limit = max_connections
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def get_client(self) -> aiohttp.ClientSession:
        """The session, made in the running loop: the connector as httpx-aiohttp makes it, and
        no cookie jar (WeChat's API sets no cookie the SDK needs; a stored cookie with a
        non-ASCII value would break every later request)."""
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def release_closed_loop(self) -> None:
        """Close a session whose event loop is closed (its connections died with the loop).

        aiohttp closes such a session without touching the dead loop; left alone, it would be
        reported as an "Unclosed client session" when garbage-collected.
        """
        session, loop = self.client, self._loop
        if isinstance(session, aiohttp.ClientSession) and loop is not None and loop.is_closed():
            self.client = None
            await session.close()

    @property
    def max_connections(self) -> int:
        """The connection limit now."""
        return self._limit

    def ensure_capacity(self, connections: int) -> int:
        """Grow the connector's limit to ``connections`` (it is read at each acquisition)."""
        if connections > self._limit:
            self._limit = connections
            self.limits = httpx.Limits(
                max_connections=connections,
                max_keepalive_connections=connections,
                keepalive_expiry=self.limits.keepalive_expiry,
            )
            session = self.client
            if isinstance(session, aiohttp.ClientSession) and session.connector is not None:
                connector: Any = session.connector
                connector._limit = connections
        return self._limit

    def _client_timeout(self, timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        cached = self._timeouts.get(key)
        if cached is None:
            # As httpx-aiohttp: ``connect`` bounds waiting for a pooled connection and connecting.
            cached = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
            if len(self._timeouts) < _TIMEOUT_CACHE:
                self._timeouts[key] = cached
        return cached

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through aiohttp; aiohttp's errors become httpx's (see map_error)."""
        session = self.client
        if not isinstance(session, aiohttp.ClientSession):
            session = self.client = self.get_client()
        content = await request.aread()  # a multipart upload's stream, read into bytes
        headers = request.headers.multi_items()
        if "transfer-encoding" in request.headers:  # the body is bytes now: aiohttp frames it
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        try:
            async with session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=content or None,
                allow_redirects=False,
                auto_decompress=False,
                timeout=self._client_timeout(request.extensions.get("timeout") or {}),
                server_hostname=request.extensions.get("sni_hostname"),
            ) as response:
                body = await response.read()
                status, raw_headers, reason = response.status, response.raw_headers, response.reason
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error: httpx.TransportError | None = map_error(exc, request)
        else:
            error = None
        if error is not None:
            # Raised here, not in the except block: aiohttp's exception (its request_info holds
            # the URL with the access token) must not stay chained as the __context__.
            raise error
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode()
        return httpx.Response(
            status, headers=raw_headers, content=body, request=request, extensions=extensions
        )

    # ---------------------------------------------------------------- the pipeline's direct path

    def prepare(self, method: str, url: str) -> tuple[str, yarl.URL]:
        """``method url`` parsed once (the pipeline keeps it per endpoint and token)."""
        return method, yarl.URL(url, encoded=True)

    async def send(
        self, target: tuple[str, yarl.URL], body: bytes | None, timeouts: Mapping[str, float | None]
    ) -> Answer:
        """Send a prepared request through aiohttp, building no httpx objects; the answer."""
        session = self.client
        if not isinstance(session, aiohttp.ClientSession):
            session = self.client = self.get_client()
        elif session.closed:
            raise httpx.ConnectError("the HTTP transport is closed")
        method, url = target
        error: httpx.TransportError | None = None
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=_PLAIN_HEADERS if body is None else _JSON_HEADERS,
                allow_redirects=False,
                timeout=self._client_timeout(timeouts),
            ) as response:
                content = await response.read()
                reason = response.reason
                return Answer(
                    response.status,
                    reason.encode("latin-1", "replace") if reason else b"",
                    response.raw_headers,
                    content,
                )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            error = map_error(exc, None)
        # Raised outside the except block: aiohttp's exception (its request_info holds the URL,
        # access token and all) must not stay chained as the __context__.
        raise error
