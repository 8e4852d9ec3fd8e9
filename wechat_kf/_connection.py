"""One HTTP/1.1 connection of the SDK's own transport, on an anyio byte stream (asyncio or trio).

A :class:`Connection` carries one request at a time: :meth:`Connection.exchange` writes the
request and reads its answer under one cancel scope whose deadline follows the phase (write
timeout while writing, then read timeout, renewed by every segment received). Errors become
httpx's exceptions, split by what they mean for a request that is not idempotent:

* nothing was written (no connection, or it could not be opened in time):
  ``httpx.ConnectError`` / ``httpx.ConnectTimeout``, raised by :meth:`Connection.open`;
* once the first byte is handed to the socket, the request may have reached the server:
  ``httpx.WriteError`` / ``httpx.WriteTimeout``, ``httpx.ReadError`` / ``httpx.ReadTimeout``,
  ``httpx.RemoteProtocolError`` (a closed or malformed answer).

No message built here holds the request's URL (where the access token travels).
"""

from __future__ import annotations

import math
import os
import select
import ssl
from typing import Final

import anyio
import anyio.abc
import certifi
import httpx
from anyio.streams.tls import TLSStream

from wechat_kf._http11 import Answer, ProtocolError, ResponseReader

__all__ = ["Connection", "Origin", "default_ssl_context"]

#: ``(scheme, host, port)``: connections are pooled per origin.
Origin = tuple[bytes, bytes, int]

#: Bytes asked for per receive.
_RECEIVE: Final = 65536
#: Bodies above this size are sent apart from the head rather than copied into one buffer.
_SEPARATE_BODY: Final = 64 * 1024
_POLL: Final = hasattr(select, "poll")


def default_ssl_context() -> ssl.SSLContext:
    """Certificate-verifying TLS, trusting what httpx trusts.

    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set (a corporate CA, as for httpx), else
    certifi's bundle; hostname checking on, TLS 1.2 at least (``ssl.create_default_context``).
    """
    # Said explicitly, though OpenSSL's default paths read the same variables: mutants passing
    # None are equivalent.
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])  # pragma: no mutate
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])  # pragma: no mutate
    return ssl.create_default_context(cafile=certifi.where())


def _readable(fd: int) -> bool:
    """Whether ``fd`` has something to read now (on an idle connection: EOF or junk)."""
    if fd < 0:  # pragma: no mutate block (a stream without a socket: never seen here)
        return True
    if _POLL:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))  # pragma: no mutate (0 or 1 ms)
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover, no mutate (Windows)
    return bool(readable)  # pragma: no cover, no mutate (Windows)


def _mapped(exc: BaseException, writing: bool) -> httpx.TransportError | None:
    """The httpx error for a failed exchange; ``None`` for a cancellation (re-raised)."""
    if isinstance(exc, ProtocolError):
        return httpx.RemoteProtocolError(str(exc))
    if isinstance(exc, OSError | anyio.BrokenResourceError):  # ssl.SSLError is an OSError
        return (httpx.WriteError if writing else httpx.ReadError)(_describe(exc))
    if isinstance(exc, anyio.ClosedResourceError):
        return httpx.ReadError("the connection was closed")
    return None


def _describe(exc: BaseException) -> str:
    """An error's text without anything of the request: the OS's or TLS's own words."""
    cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else None
    shown = cause or exc
    return f"{type(shown).__name__}: {shown}" if str(shown) else type(shown).__name__


class Connection:
    """One keep-alive connection to ``origin``; see the module docstring."""

    __slots__ = ("_fd", "_reader", "_stream", "broken", "idle_since", "origin")

    def __init__(self, origin: Origin, stream: anyio.abc.ByteStream) -> None:
        self.origin = origin
        self._stream = stream
        self._reader = ResponseReader()
        #: When the connection last went idle (the pool's clock; set when it goes idle).
        self.idle_since = 0.0  # pragma: no mutate (set before it is read)
        #: Set once the connection must not carry another request.
        self.broken = False  # pragma: no mutate (None is as false)
        try:
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            self._fd = raw.fileno()
        except (anyio.TypedAttributeLookupError, OSError):  # pragma: no cover
            self._fd = -1  # pragma: no cover, no mutate

    @classmethod
    async def open(
        cls, origin: Origin, ssl_context: ssl.SSLContext | None, connect_timeout: float | None
    ) -> Connection:
        """Connect (for https, handshake with certificate verification) within the timeout.

        Raises:
            httpx.ConnectError: no connection (DNS, refused, unreachable, TLS verification).
            httpx.ConnectTimeout: not connected within ``timeout``.
        """
        scheme, host, port = origin
        hostname = host.decode("ascii")  # pragma: no mutate (codec name's case)
        try:
            with anyio.fail_after(connect_timeout):
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(hostname, port)
                if scheme == b"https":
                    try:
                        stream = await TLSStream.wrap(
                            stream,
                            hostname=hostname,
                            ssl_context=ssl_context or default_ssl_context(),
                            standard_compatible=False,
                        )
                    except BaseException:
                        await anyio.aclose_forcefully(stream)
                        raise
        except TimeoutError:  # ours, or the OS giving up (ETIMEDOUT)
            raise httpx.ConnectTimeout(f"no connection within {connect_timeout} s") from None
        except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            raise httpx.ConnectError(_describe(exc)) from exc
        return cls(origin, stream)

    def stale(self) -> bool:
        """Whether an idle connection can no longer be used (the server closed it, or junk)."""
        return self.broken or _readable(self._fd)

    async def exchange(
        self,
        head: bytes,
        body: bytes,
        *,
        head_request: bool,
        write_timeout: float | None,
        read_timeout: float | None,
    ) -> Answer:
        """Write the request, read the whole answer. Sets :attr:`broken` unless reusable."""
        reader = self._reader
        stream = self._stream
        writing = True
        deadline = math.inf if write_timeout is None else anyio.current_time() + write_timeout
        try:
            with anyio.CancelScope(deadline=deadline) as scope:
                reader.start(head=head_request)
                if len(body) > _SEPARATE_BODY:  # pragma: no mutate (a copy saved, same bytes)
                    await stream.send(head)
                    await stream.send(body)
                else:
                    await stream.send(head + body if body else head)  # pragma: no mutate
                writing = False  # pragma: no mutate (None is as false)
                if read_timeout is not None:
                    scope.deadline = anyio.current_time() + read_timeout
                while reader.answer is None:
                    try:
                        data = await stream.receive(_RECEIVE)
                    except anyio.EndOfStream:
                        reader.eof()
                        break
                    reader.feed(data)
                    if read_timeout is not None and reader.answer is None:
                        scope.deadline = anyio.current_time() + read_timeout
        except BaseException as exc:
            self.broken = True
            mapped = _mapped(exc, writing)
            if mapped is None:
                raise  # cancelled: the caller's business; the connection is not reused
            raise mapped from (None if isinstance(exc, ProtocolError) else exc)
        answer = reader.answer
        if scope.cancelled_caught or answer is None:  # pragma: no mutate (None: cancelled)
            self.broken = True
            if writing:
                raise httpx.WriteTimeout(f"request not written within {write_timeout} s")
            raise httpx.ReadTimeout(f"no answer within {read_timeout} s")
        if not reader.reusable:
            self.broken = True
        return answer

    async def aclose_or_forget(self) -> None:
        """Close; a stream of a closed asyncio loop cannot be, and goes with the garbage."""
        try:
            await self.aclose()
        except RuntimeError:  # "Event loop is closed"
            del self._stream

    async def aclose(self) -> None:
        """Close at once (no TLS close handshake: nothing more is sent or awaited)."""
        self.broken = True
        await anyio.aclose_forcefully(self._stream)

    def __repr__(self) -> str:
        scheme, host, port = self.origin
        state = "broken" if self.broken else "usable"
        return f"<Connection {scheme.decode()}://{host.decode()}:{port} {state}>"
