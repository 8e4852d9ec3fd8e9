"""The HTTP transport of the client the SDK creates: httpx's own pool, or aiohttp (the fast extra).

Measured on loopback (benchmarks/), httpx's own connection pool is the bottleneck from about 16
concurrent requests up: its bookkeeping costs more than the request itself. The ``aiohttp``
extra (``pip install "wechat_kf[aiohttp]"``) keeps the ``httpx.AsyncClient`` API and sends
through aiohttp's connector instead, several times faster under concurrency. aiohttp runs on
asyncio only, so the choice is made at the first request: on trio the SDK falls back to httpx's
own transport.

Both pools keep every connection alive (keep-alive limit = connection limit): httpx's default of
20 keep-alive connections reconnects on nearly every request above ~100 in flight. The pools can
grow (:meth:`ensure_capacity`) so that a bulk send's workers each get a connection.

aiohttp's exceptions are mapped here with one rule that matters for non-idempotent sends: only
errors raised before anything was written (no connection could be made, or none became free in
time) become ``httpx.ConnectError`` / ``httpx.ConnectTimeout``, which the pipeline may retry.
Everything after that (a dropped connection, a read timeout) is an error that may have reached
WeChat. (The mapping httpx-aiohttp ships turns a dropped keep-alive connection into
``ConnectTimeout``, which would make a message send retry and arrive twice.)
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

import httpx
import sniffio

from wechat_kf._redaction import get_logger

if TYPE_CHECKING:
    from wechat_kf._aiohttp import AiohttpSDKTransport

__all__ = [
    "TRANSPORTS",
    "PoolSizer",
    "SDKHTTPClient",
    "TransportName",
    "aiohttp_installed",
    "make_transport",
]

logger = get_logger("wechat_kf")

TransportName = Literal["httpx", "aiohttp", "auto"]
TRANSPORTS: Final = ("httpx", "aiohttp", "auto")

_EXTRA_HINT: Final = 'transport="aiohttp" needs the aiohttp extra: pip install "wechat_kf[aiohttp]"'


def aiohttp_installed() -> bool:
    """Whether the ``aiohttp`` extra (aiohttp and httpx-aiohttp) is importable."""
    return all(importlib.util.find_spec(name) is not None for name in ("aiohttp", "httpx_aiohttp"))


class PoolSizer(Protocol):
    """A transport whose connection pool the SDK sizes (and may grow) itself."""

    @property
    def max_connections(self) -> int:
        """The connection limit (and keep-alive limit) now."""
        ...

    def ensure_capacity(self, connections: int) -> int:
        """Grow the pool to at least ``connections``; return the limit now in force."""
        ...


def make_transport(
    kind: TransportName, *, max_connections: int, keepalive_expiry: float
) -> tuple[httpx.AsyncBaseTransport, PoolSizer]:
    """The transport for the client the SDK creates, and the handle that sizes its pool.

    Raises:
        ImportError: ``kind="aiohttp"`` without the extra installed.
    """
    if kind == "httpx":
        transport = _HttpxTransport(max_connections, keepalive_expiry)
        return transport, transport
    if kind == "aiohttp":
        if not aiohttp_installed():
            raise ImportError(_EXTRA_HINT)
        import wechat_kf._aiohttp  # noqa: F401  (imported now, not inside the event loop)
    lazy = _SelectingTransport(kind, max_connections, keepalive_expiry)
    return lazy, lazy


class _NoCookies(httpx.Cookies):
    """A cookie jar that stores nothing: the SDK's client ignores ``Set-Cookie``.

    WeChat's API sets no cookie the SDK needs. Storing them costs about a tenth of a request's
    CPU time (httpx hands every response to ``http.cookiejar``), and one cookie with a value
    beyond ASCII (``Set-Cookie: sid=caf\xe9``) would make every later request fail to encode.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore the response's cookies."""


class SDKHTTPClient(httpx.AsyncClient):
    """The ``httpx.AsyncClient`` the SDK creates for itself: a plain one that keeps no cookies."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sdk_cookies = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty: the SDK's client ignores cookies."""
        return self._sdk_cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        self._sdk_cookies = _NoCookies()

    async def release_closed_loop(self) -> None:
        """Let go of connections whose event loop is closed (see ``EventLoopChangedError``)."""
        transport: Any = self._transport
        release = getattr(transport, "release_closed_loop", None)
        if release is not None:
            await release()


class _HttpxTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport with keep-alive = connection limit, and a pool that can grow."""

    def __init__(self, max_connections: int, keepalive_expiry: float) -> None:
        super().__init__(
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=keepalive_expiry,
            )
        )
        self._limit = max_connections

    @property
    def max_connections(self) -> int:
        """The connection limit (and keep-alive limit) now."""
        return self._limit

    def ensure_capacity(self, connections: int) -> int:
        """Grow httpcore's pool limits to ``connections`` (they are read at each request)."""
        if connections > self._limit:
            pool: Any = self._pool
            pool._max_connections = connections
            pool._max_keepalive_connections = connections
            self._limit = connections
        return self._limit


class _SelectingTransport(httpx.AsyncBaseTransport):
    """aiohttp on asyncio (when installed), httpx's own transport elsewhere: chosen once.

    The choice waits for the first request because only then is the async library known: the
    client may be built outside any event loop.
    """

    def __init__(self, kind: TransportName, max_connections: int, keepalive_expiry: float):
        self.requested = kind
        self._limit = max_connections
        self._expiry = keepalive_expiry
        self._inner: _HttpxTransport | AiohttpSDKTransport | None = None

    @property
    def active(self) -> str | None:
        """``"aiohttp"`` or ``"httpx"`` once the first request chose; ``None`` before."""
        if self._inner is None:
            return None
        return "httpx" if isinstance(self._inner, _HttpxTransport) else "aiohttp"

    @property
    def max_connections(self) -> int:
        """The connection limit (and keep-alive limit) now."""
        return self._limit

    def ensure_capacity(self, connections: int) -> int:
        """Grow the pool (now, or when the first request creates it)."""
        self._limit = max(self._limit, connections)
        if self._inner is not None:
            self._inner.ensure_capacity(self._limit)
        return self._limit

    def _choose(self) -> _HttpxTransport | AiohttpSDKTransport:
        library = sniffio.current_async_library()
        inner: _HttpxTransport | AiohttpSDKTransport
        if library == "asyncio" and (self.requested == "aiohttp" or aiohttp_installed()):
            from wechat_kf._aiohttp import AiohttpSDKTransport

            inner = AiohttpSDKTransport(self._limit, self._expiry)
        else:
            if self.requested == "aiohttp":
                logger.info("transport='aiohttp' runs on asyncio only; using httpx on %s", library)
            inner = _HttpxTransport(self._limit, self._expiry)
        self._inner = inner
        return inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the chosen transport (choosing it at the first request)."""
        inner = self._inner
        if inner is None:
            inner = self._choose()
        return await inner.handle_async_request(request)

    async def release_closed_loop(self) -> None:
        """Close an aiohttp session whose event loop is closed (nothing to do for httpx's)."""
        inner = self._inner
        if inner is not None and not isinstance(inner, _HttpxTransport):
            await inner.release_closed_loop()

    async def aclose(self) -> None:
        """Close the chosen transport's connections."""
        if self._inner is not None:
            await self._inner.aclose()
