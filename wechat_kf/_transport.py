"""The HTTP transport of the client the SDK creates, chosen by ``AsyncWeChat(transport=...)``.

The client is an ``httpx.AsyncClient`` whichever transport sends its requests:

* ``"auto"`` (the default): ``"aiohttp"`` when the ``aiohttp`` extra is installed and the code
  runs on asyncio, else ``"anyio"``. Chosen at the first request (only then is the async library
  known: the client may be built outside any event loop).
* ``"anyio"``: the SDK's own HTTP/1.1 connection pool on anyio streams (asyncio and trio;
  :mod:`wechat_kf._pool`), built to hold up with hundreds of requests in flight.
* ``"aiohttp"``: aiohttp's connector through httpx-aiohttp (``pip install
  "wechat_kf[aiohttp]"``), the fastest on asyncio; on trio the SDK sends with ``"anyio"``.
* ``"httpx"``: the same as ``"anyio"`` (the client is an ``httpx.AsyncClient`` either way).
  It used to mean httpx's own pool (httpcore), which slows down from ~16 requests in flight:
  httpcore 1.0 hands one idle connection to every request that enters the pool in the same
  tick, all but one fail and queue again (see benchmarks/, issue 12). Those who want exactly
  httpx's pool pass their own client: ``AsyncWeChat(http_client=httpx.AsyncClient())``, which
  is used as it is, whatever its transport.

Every pool keeps each connection alive (keep-alive limit = connection limit: httpx's default of
20 keep-alive connections reconnects on nearly every request above ~100 in flight) and can grow
(:meth:`PoolSizer.ensure_capacity`) so that a bulk send's workers each get a connection.

Errors keep one rule that matters for non-idempotent sends: only errors raised before anything
was written (no connection could be made, or none became free in time) are
``httpx.ConnectError`` / ``httpx.ConnectTimeout`` / ``httpx.PoolTimeout``, which the pipeline may
retry. Everything after that (a dropped connection, a read timeout, a malformed answer) is an
error after which the request may have reached WeChat. (The mapping httpx-aiohttp ships turns a
dropped keep-alive connection into ``ConnectTimeout``, which would make a message send retry and
arrive twice; ``_aiohttp.py`` maps aiohttp's errors itself.)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, runtime_checkable

import httpx
import sniffio

from wechat_kf._http11 import Answer
from wechat_kf._pool import AnyioTransport, Timeouts
from wechat_kf._redaction import get_logger

if TYPE_CHECKING:
    from wechat_kf._aiohttp import AiohttpSDKTransport

__all__ = [
    "TRANSPORTS",
    "DirectSender",
    "PoolSizer",
    "SDKHTTPClient",
    "TransportName",
    "aiohttp_installed",
    "make_transport",
]

logger = get_logger("wechat_kf")

TransportName = Literal["auto", "anyio", "aiohttp", "httpx"]
TRANSPORTS: Final = ("auto", "anyio", "aiohttp", "httpx")

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


@runtime_checkable
class DirectSender(PoolSizer, Protocol):
    """A transport of the SDK's own client that the pipeline may call without httpx's layers.

    The SDK owns that client (no hooks, auth, cookies or proxies to honour), so a call needs no
    ``httpx.Request``/``httpx.Response``: :meth:`prepare` renders ``method url`` once (the
    pipeline keeps it per endpoint and access token), :meth:`send` sends it with a JSON body
    (or none) and returns the whole :class:`~wechat_kf._http11.Answer`. Errors are httpx's,
    with the same "never sent" split as the transport's ``handle_async_request``.
    """

    def prepare(self, method: str, url: str) -> object:
        """``method url`` rendered for :meth:`send`."""
        ...

    def send(self, target: Any, body: bytes | None, timeouts: Timeouts) -> Awaitable[Answer]:
        """Send a prepared request; the whole answer (an awaitable of it)."""
        ...


def make_transport(
    kind: TransportName, *, max_connections: int, keepalive_expiry: float
) -> tuple[httpx.AsyncBaseTransport, PoolSizer]:
    """The transport for the client the SDK creates, and the handle that sizes its pool.

    Raises:
        ImportError: ``kind="aiohttp"`` without the extra installed.
    """
    if kind in ("anyio", "httpx"):
        own = AnyioTransport(max_connections, keepalive_expiry)
        return own, own
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


class _SelectingTransport(httpx.AsyncBaseTransport):
    """aiohttp on asyncio (when installed), the SDK's anyio transport elsewhere: chosen once.

    The choice waits for the first request because only then is the async library known: the
    client may be built outside any event loop.
    """

    def __init__(self, kind: TransportName, max_connections: int, keepalive_expiry: float):
        self.requested = kind
        self._limit = max_connections
        self._expiry = keepalive_expiry
        self._inner: AnyioTransport | AiohttpSDKTransport | None = None

    @property
    def active(self) -> str | None:
        """``"aiohttp"`` or ``"anyio"`` once the first request chose; ``None`` before."""
        if self._inner is None:
            return None
        return "anyio" if isinstance(self._inner, AnyioTransport) else "aiohttp"

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

    def _choose(self) -> AnyioTransport | AiohttpSDKTransport:
        library = sniffio.current_async_library()
        inner: AnyioTransport | AiohttpSDKTransport
        # (make_transport refused "aiohttp" without the extra: installed is the one question.)
        if library == "asyncio" and aiohttp_installed():
            from wechat_kf._aiohttp import AiohttpSDKTransport

            inner = AiohttpSDKTransport(self._limit, self._expiry)
        else:
            if self.requested == "aiohttp":
                logger.info("transport='aiohttp' runs on asyncio only; using anyio on %s", library)
            inner = AnyioTransport(self._limit, self._expiry)
        self._inner = inner
        return inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through the chosen transport (choosing it at the first request)."""
        inner = self._inner
        if inner is None:
            inner = self._choose()
        return await inner.handle_async_request(request)

    def prepare(self, method: str, url: str) -> object:
        """Render for the chosen transport (choosing it now: this runs in the event loop)."""
        inner = self._inner
        if inner is None:
            inner = self._choose()
        return inner.prepare(method, url)

    def send(self, target: Any, body: bytes | None, timeouts: Timeouts) -> Awaitable[Answer]:
        """Send a prepared request through the chosen transport (its awaitable, unwrapped)."""
        inner = self._inner
        assert inner is not None  # prepare() chose it
        return inner.send(target, body, timeouts)

    async def release_closed_loop(self) -> None:
        """Release what a closed event loop left behind (aiohttp's session; nothing for ours)."""
        release = getattr(self._inner, "release_closed_loop", None)
        if release is not None:
            await release()

    async def aclose(self) -> None:
        """Close the chosen transport's connections."""
        if self._inner is not None:
            await self._inner.aclose()
