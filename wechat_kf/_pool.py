"""The SDK's own transport (``transport="anyio"``): a connection pool on anyio (asyncio, trio).

Why our own, rather than httpx's pool (httpcore): httpcore 1.0 assigns a queued request to an
idle connection without reserving it; the connection becomes busy only once the request's task
runs, so every request entering the pool in one tick is handed the same idle connection, all but
one fail over and go round the assignment again, and the pool walks every connection (with a
``select()`` on each idle one) per request. Above ~16 requests in flight httpx gets slower the
more it is asked to do (measured in benchmarks/: 5% of C/RTT at C=64, 50 ms). This pool:

* **reserves at assignment**: a request takes an idle connection (or a slot to open one) in
  one synchronous step; a released connection is handed straight to the first waiter, never
  put up for grabs. No request ever retries its way into the pool.
* **O(1) bookkeeping**: idle connections in a deque per origin (last used first, so the
  surplus expires at the far end), waiters in a FIFO, a count of open connections; one
  ``poll()`` of the connection about to be reused (did the server close it?) instead of a
  ``select()`` on every idle connection.
* **keep-alive expiry**: idle connections older than ``keepalive_expiry`` are closed when the
  pool is next used (oldest first), never reused.
* **timeouts of every kind**: ``pool`` (waiting for a connection: ``httpx.PoolTimeout``),
  ``connect`` (TCP and TLS: ``httpx.ConnectTimeout``), ``write`` and ``read`` (per exchange,
  the read timeout renewed by each segment: ``httpx.WriteTimeout``/``httpx.ReadTimeout``).

HTTP/1.1 only (WeChat's API speaks it), TLS with certificate verification
(:func:`~wechat_kf._connection.default_ssl_context`). Request bodies are sent whole and answers
read whole before returning (WeChat's answers are small): a connection goes back to the pool as
soon as its answer is in.

Two ways in: ``handle_async_request`` (an ``httpx.AsyncClient`` transport, for any request),
and :meth:`AnyioTransport.send`, the pipeline's direct path for the SDK's own client, which
sends a pre-rendered request head (per endpoint and token) and returns an
:class:`~wechat_kf._http11.Answer` without building httpx request or response objects.
"""

from __future__ import annotations

import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import anyio
import httpx

from wechat_kf._connection import Connection, Origin
from wechat_kf._defaults import USER_AGENT
from wechat_kf._http11 import Answer, request_head

__all__ = ["AnyioTransport", "ConnectionPool", "Target"]

_DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}
#: Methods whose request carries ``Content-Length: 0`` when it has no body (as httpx does).
_BODY_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})
_DROP_HEADERS: Final = frozenset({b"transfer-encoding", b"content-length"})

Timeouts = Mapping[str, float | None]


class _Waiter:
    """A request waiting for a connection: handed one, or a slot to open one."""

    __slots__ = ("connection", "event", "gone", "origin", "slot")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.event = anyio.Event()
        self.connection: Connection | None = None
        self.slot = False  # pragma: no mutate (None is as false)
        self.gone = False  # pragma: no mutate (None is as false)


class ConnectionPool:
    """At most ``max_connections`` connections (open or opening), all kept alive when idle."""

    def __init__(
        self,
        max_connections: int,
        keepalive_expiry: float | None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self._expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._clock = clock
        #: Connections open or being opened (each holds a slot).
        self._count = 0
        self._idle: dict[Origin, deque[Connection]] = {}
        self._idle_count = 0
        self._waiters: deque[_Waiter] = deque()
        self._closed = False

    @property
    def connections(self) -> int:
        """Connections open or being opened now."""
        return self._count

    @property
    def idle(self) -> int:
        """Idle connections kept alive now."""
        return self._idle_count

    def grow(self, max_connections: int) -> None:
        """Raise the limit (never lowers it); waiters get the new slots at once."""
        if max_connections > self.max_connections:  # pragma: no mutate (>=: the same limit)
            self.max_connections = max_connections
            while self._count < self.max_connections and self._grant_slot():
                pass

    # ---------------------------------------------------------------- acquire

    async def acquire(
        self, origin: Origin, *, connect_timeout: float | None, pool_timeout: float | None
    ) -> Connection:
        """A connection to ``origin`` reserved for the caller; release it with :meth:`release`.

        Raises:
            httpx.PoolTimeout: no connection became free within ``pool_timeout``.
            httpx.ConnectError / httpx.ConnectTimeout: a new connection could not be opened.
        """
        if self._closed:
            raise httpx.ConnectError("the HTTP transport is closed")
        while True:
            connection, stale = self._take(origin)
            for old in stale:
                await old.aclose()
            if connection is not None:
                return connection
            if self._count < self.max_connections:
                self._count += 1  # the slot is ours before the first await
                return await self._open(origin, connect_timeout)
            if self._idle_count:
                victim = self._evict_other_origin()
                if victim is not None:
                    await victim.aclose()
                    continue
            waiter = await self._wait(origin, pool_timeout)
            if waiter.connection is not None:
                connection = waiter.connection
                if not connection.stale():
                    return connection
                self._discard(connection)
                await connection.aclose()
                continue
            return await self._open(origin, connect_timeout)  # granted a slot

    def _take(self, origin: Origin) -> tuple[Connection | None, list[Connection]]:
        """An idle connection to ``origin`` fit for reuse, and the ones found unfit."""
        stale: list[Connection] = []
        if not self._idle_count:
            return None, stale
        if self._expiry is not None:
            oldest = self._clock() - self._expiry
            for idle in self._idle.values():
                while idle and idle[0].idle_since < oldest:
                    stale.append(idle.popleft())
        queue = self._idle.get(origin)
        found = None
        while queue:
            connection = queue.pop()
            if connection.stale():
                stale.append(connection)
            else:
                found = connection
                break
        self._idle_count -= len(stale) + (found is not None)
        self._count -= len(stale)
        return found, stale

    def _evict_other_origin(self) -> Connection | None:
        for queue in self._idle.values():
            if queue:
                victim = queue.popleft()
                self._idle_count -= 1
                self._count -= 1
                return victim
        return None  # pragma: no cover  (idle count says there is one)

    async def _open(self, origin: Origin, connect_timeout: float | None) -> Connection:
        if self._closed:  # closed while this request waited for a slot
            self._count -= 1
            raise httpx.ConnectError("the HTTP transport is closed")
        try:
            return await Connection.open(origin, self._ssl_context, connect_timeout)
        except BaseException:
            self._count -= 1
            self._grant_slot()
            raise

    async def _wait(self, origin: Origin, pool_timeout: float | None) -> _Waiter:
        waiter = _Waiter(origin)
        self._waiters.append(waiter)
        try:
            with anyio.fail_after(pool_timeout):
                await waiter.event.wait()
        except BaseException as exc:
            waiter.gone = True
            if waiter.connection is not None:  # handed over as we gave up: pass it on
                connection, waiter.connection = waiter.connection, None
                doomed = self.release(connection)
                if doomed is not None:
                    await doomed.aclose()
            elif waiter.slot:
                self._count -= 1
                self._grant_slot()
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout(
                    f"no connection free within {pool_timeout} s "
                    f"({self.max_connections} in use; raise max_connections)"
                ) from None
            raise
        return waiter

    # ---------------------------------------------------------------- release

    def release(self, connection: Connection) -> Connection | None:
        """Take ``connection`` back; returns it if the caller must close it (``aclose``)."""
        if connection.broken or self._closed or not self._hand_over(connection):
            self._discard(connection)
            return connection
        return None

    def _discard(self, connection: Connection) -> None:
        """Free the slot of a connection that will be closed."""
        connection.broken = True  # pragma: no mutate (the caller closes it: aclose sets it)
        self._count -= 1
        self._grant_slot()

    def _hand_over(self, connection: Connection) -> bool:
        """To the first waiter for its origin, else back to the idle deque.

        ``False`` when requests wait for other origins only: the caller closes the connection
        and its slot goes to them.
        """
        waiters = self._waiters
        while waiters and waiters[0].gone:
            waiters.popleft()
        if waiters:
            origin = connection.origin
            for waiter in waiters:
                if not waiter.gone and waiter.origin == origin:
                    waiters.remove(waiter)
                    waiter.connection = connection
                    waiter.event.set()
                    return True
            return False
        connection.idle_since = self._clock()
        self._idle.setdefault(connection.origin, deque()).append(connection)
        self._idle_count += 1
        return True

    def _grant_slot(self) -> bool:
        """Give a free slot to the first live waiter; whether there was one."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.gone:
                self._count += 1
                waiter.slot = True
                waiter.event.set()
                return True
        return False

    def take_idle(self) -> list[Connection]:
        """Every idle connection, out of the pool (their slots freed): the caller closes them."""
        idle = [connection for queue in self._idle.values() for connection in queue]
        self._idle.clear()
        self._count -= len(idle)
        self._idle_count = 0
        while self._count < self.max_connections and self._grant_slot():
            pass
        return idle

    async def aclose(self) -> None:
        """Close every idle connection; busy ones are closed as they come back."""
        self._closed = True
        for connection in self.take_idle():
            await connection.aclose()


class Target:
    """A request rendered once: its origin and head (per endpoint and access token)."""

    __slots__ = ("head", "head_request", "origin")

    def __init__(self, origin: Origin, head: bytes, head_request: bool) -> None:
        self.origin = origin
        #: The request line and fixed header fields, without the framing of the body.
        self.head = head
        self.head_request = head_request


def _origin(url: httpx.URL) -> Origin:
    scheme = url.raw_scheme
    port = _DEFAULT_PORTS.get(scheme)
    if port is None:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme.decode()!r}")
    return scheme, url.raw_host, url.port or port


class AnyioTransport(httpx.AsyncBaseTransport):
    """The SDK's own transport; see the module docstring.

    Args:
        max_connections: Connections it may open (the keep-alive limit too).
        keepalive_expiry: Seconds an idle connection is kept (``None``: for ever).
        ssl_context: For https (default: certificate-verifying, certifi or ``SSL_CERT_FILE``).
        clock: Monotonic seconds, for keep-alive expiry (tests pass their own).
    """

    def __init__(
        self,
        max_connections: int = 100,
        keepalive_expiry: float | None = 30.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = ConnectionPool(
            max_connections, keepalive_expiry, ssl_context=ssl_context, clock=clock
        )

    @property
    def max_connections(self) -> int:
        """The connection limit (and keep-alive limit) now."""
        return self.pool.max_connections

    def ensure_capacity(self, connections: int) -> int:
        """Grow the pool to at least ``connections``; the limit now in force."""
        self.pool.grow(connections)
        return self.pool.max_connections

    def prepare(self, method: str, url: str) -> Target:
        """Render ``method url`` once, with the SDK's fixed header fields."""
        parsed = httpx.URL(url)
        headers = [
            (b"Host", parsed.netloc),
            (b"Accept", b"*/*"),
            (b"Accept-Encoding", b"identity"),
            (b"User-Agent", USER_AGENT.encode("ascii")),  # pragma: no mutate (case)
        ]
        raw_method = method.encode("ascii")  # pragma: no mutate (codec name's case)
        head = request_head(raw_method, parsed.raw_path, headers)[:-2]  # without the blank line
        return Target(_origin(parsed), head, raw_method == b"HEAD")

    def send(self, target: Target, body: bytes | None, timeouts: Timeouts) -> Awaitable[Answer]:
        """Send a prepared request with a JSON ``body`` (or none); the whole answer.

        (A plain function returning the exchange's awaitable: no coroutine of its own.)
        """
        if body is None:
            tail = b"\r\n"
            body = b""
        else:
            tail = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        return self._exchange(
            target.origin, target.head + tail, body, target.head_request, timeouts
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send any ``httpx.Request`` (its body read whole first); the whole answer."""
        url = request.url
        origin = _origin(url)
        body = await request.aread()
        method = request.method.encode("ascii")  # pragma: no mutate (codec name's case)
        headers = [(k, v) for k, v in request.headers.raw if k.lower() not in _DROP_HEADERS]
        if body or method in _BODY_METHODS:
            headers.append((b"Content-Length", b"%d" % len(body)))
        head = request_head(method, url.raw_path, headers)
        timeouts: Timeouts = request.extensions.get("timeout") or {}
        answer = await self._exchange(origin, head, body, method == b"HEAD", timeouts)
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}  # pragma: no mutate
        # (httpx says HTTP/1.1 itself when told nothing: the mutants above are equivalent.)
        if answer.reason:
            extensions["reason_phrase"] = answer.reason
        return httpx.Response(
            answer.status_code,
            headers=list(answer.raw_headers),
            content=answer.content,
            request=request,
            extensions=extensions,
        )

    async def _exchange(
        self,
        origin: Origin,
        head: bytes,
        body: bytes,
        head_request: bool,
        timeouts: Timeouts,
    ) -> Answer:
        pool = self.pool
        connection = await pool.acquire(
            origin,
            connect_timeout=timeouts.get("connect"),
            pool_timeout=timeouts.get("pool"),
        )
        try:
            return await connection.exchange(
                head,
                body,
                head_request=head_request,
                write_timeout=timeouts.get("write"),
                read_timeout=timeouts.get("read"),
            )
        finally:
            doomed = pool.release(connection)
            if doomed is not None:
                await doomed.aclose()

    async def release_closed_loop(self) -> None:
        """Let go of the idle connections of an event loop this client no longer runs in.

        A closed asyncio loop's cannot be closed from another (their transports need their
        loop): they are dropped, to the garbage collector. Trio's close from any run.
        """
        for connection in self.pool.take_idle():
            await connection.aclose_or_forget()

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self.pool.aclose()
