"""HTTP/1.1 on the wire, for the SDK's own transport: request bytes out, response framing in.

No I/O here: :func:`request_head` renders a request head, :class:`ResponseReader` turns the
bytes a connection receives into :class:`Answer` objects. It implements what a client needs
(RFC 9112): status line and header fields, ``Content-Length``, ``chunked`` and close-delimited
bodies, interim ``1xx`` answers skipped, no body for ``HEAD``/``204``/``304``, and whether the
connection may be reused. Tolerant where real servers drift (bare ``LF`` line ends, obsolete
line folding, a repeated identical ``Content-Length``); a framing that cannot be trusted (a bad
or conflicting ``Content-Length``, a bad chunk) is a :class:`ProtocolError`, and the connection
is never reused after it.

Why not h11: it costs ~47 µs per exchange in pure Python, half of what raw aiohttp spends on a
whole message; this reader does the same framing work in a few microseconds, because the
common answer (one small body in one segment) takes one search and a few splits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

import httpx

__all__ = ["Answer", "ProtocolError", "ResponseReader", "chunk", "request_head"]

#: The longest response head accepted (status line and header fields).
MAX_HEAD: Final = 64 * 1024
#: The most header fields accepted in one response head.
MAX_FIELDS: Final = 256
#: The longest chunk-size line (size, extensions) accepted.
MAX_CHUNK_LINE: Final = 4 * 1024
#: The end of a head: an empty line (bare LF line ends tolerated).
_HEAD_END: Final = re.compile(rb"\n\r?\n")
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
_NO_BODY: Final = frozenset({204, 304})
_LAST_CHUNK: Final = b"0\r\n\r\n"


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client can trust."""


class Answer:
    """One whole response; read like the parts of an ``httpx.Response`` the pipeline reads.

    ``status_code``, ``reason``, ``raw_headers`` (as received), ``content`` (the whole body) and
    ``headers`` (an ``httpx.Headers``, built only when asked for: error answers).
    """

    __slots__ = ("content", "raw_headers", "reason", "status_code")

    def __init__(
        self,
        status_code: int,
        reason: bytes,
        raw_headers: Sequence[tuple[bytes, bytes]],
        content: bytes,
    ) -> None:
        self.status_code = status_code
        self.reason = reason
        self.raw_headers = raw_headers
        self.content = content

    @property
    def headers(self) -> httpx.Headers:
        """The header fields, case-insensitive."""
        return httpx.Headers(list(self.raw_headers))

    def __repr__(self) -> str:
        return f"<Answer {self.status_code} ({len(self.content)} bytes)>"


def request_head(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The request line and header fields, ending with the empty line."""
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of the chunked transfer coding (``b""``: the last chunk)."""
    if not data:
        return _LAST_CHUNK
    return b"%x\r\n%b\r\n" % (len(data), data)


class _Head:
    """A parsed response head and the framing of its body."""

    __slots__ = ("chunked", "headers", "keep_alive", "length", "reason", "status")

    def __init__(self, status: int, reason: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers: list[tuple[bytes, bytes]] = []
        #: The body's length (``Content-Length``), ``None`` for chunked or close-delimited.
        self.length: int | None = None
        self.chunked = False  # pragma: no mutate (None is as false)
        self.keep_alive = True


def _parse_head(data: bytes) -> _Head:
    lines = data.split(b"\n")
    status_line = lines[0].rstrip(b"\r")
    version, _, rest = status_line.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise ProtocolError(f"not an HTTP/1.1 status line: {status_line[:40]!r}")
    code = rest[:3]
    if len(code) != 3 or not code.isdigit() or rest[3:4] not in (b"", b" "):
        raise ProtocolError(f"bad status code in {status_line[:40]!r}")
    head = _Head(int(code), rest[4:])
    if len(lines) > MAX_FIELDS + 1:
        raise ProtocolError(f"more than {MAX_FIELDS} header fields")
    headers = head.headers
    lengths: set[bytes] = set()
    connection: list[bytes] = []
    codings = b""  # pragma: no mutate (None is as empty)
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):  # obsolete line folding: continues the previous value
            if not headers:
                raise ProtocolError("header continuation before any header field")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise ProtocolError(f"bad header field: {line[:40]!r}")
        value = value.strip(b" \t")
        headers.append((name, value))
        lname = name.lower()
        if lname == b"content-length":
            lengths.update(part.strip(b" \t") for part in value.split(b","))
        elif lname == b"transfer-encoding":
            codings = (codings + b"," + value) if codings else value  # pragma: no mutate (last)
        elif lname == b"connection":
            connection += (token.strip(b" \t").lower() for token in value.split(b","))
    if b"close" in connection:  # whatever else it says (RFC 9112 9.3)
        head.keep_alive = False
    elif version == b"HTTP/1.0":
        head.keep_alive = b"keep-alive" in connection
    if codings:
        # RFC 9112 6.3: chunked as the final coding frames the body; otherwise the body ends
        # when the server closes. Either way Transfer-Encoding overrides Content-Length.
        last = codings.split(b",")[-1].strip(b" \t").lower()
        if last == b"chunked":
            head.chunked = True
        if lengths:
            head.keep_alive = False
    elif lengths:
        if len(lengths) != 1:
            raise ProtocolError("conflicting Content-Length values")
        (length,) = lengths
        if not length.isdigit() or not length.isascii():
            raise ProtocolError(f"bad Content-Length: {length[:20]!r}")
        head.length = int(length)
    # Neither chunked nor a length: the body ends when the server closes (the reader never
    # reuses such a connection), unless the answer has no body (HEAD, 204, 304).
    return head


class ResponseReader:
    """Frames the responses received on one connection; feed it bytes, ask for the answer.

    Use: :meth:`start` before each response (``head=True`` for a ``HEAD`` request), then
    :meth:`feed` every chunk received until :meth:`answer` is not ``None`` (call :meth:`eof`
    when the server closes). Afterwards :attr:`reusable` says whether the connection may carry
    another request.
    """

    __slots__ = (
        "_body",
        "_buffer",
        "_chunk_left",
        "_head",
        "_head_request",
        "_state",
        "answer",
        "reusable",
        "started",
    )

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._chunk_left = 0  # pragma: no mutate (set before it is read)
        self.start()

    def start(self, *, head: bool = False) -> None:
        """Expect the answer to a new request (``head``: to a ``HEAD`` request)."""
        if self._buffer:  # bytes nobody asked for: the connection is out of step
            raise ProtocolError("data received before the request was sent")
        self._head: _Head | None = None  # pragma: no mutate (set before it is read)
        self._head_request = head
        self._body: list[bytes] = []
        self._state = "head"
        #: The complete answer, once framed.
        self.answer: Answer | None = None
        #: Whether the connection may carry another request after this answer.
        self.reusable = False
        #: Whether any byte of this response arrived (a reused connection that closes before
        #: answering shows none).
        self.started = False

    def feed(self, data: bytes) -> None:
        """Take bytes received from the server."""
        if data:
            self.started = True
            self._buffer += data
            self._advance()

    def eof(self) -> None:
        """The server closed the connection."""
        if self.answer is not None:
            self.reusable = False  # pragma: no mutate (None is as false)
            return
        if self._state == "until-close":
            self._body.append(bytes(self._buffer))
            self._buffer.clear()
            self._finish(reusable=False)
            return
        if not self.started:
            raise ProtocolError("the server closed the connection without answering")
        raise ProtocolError("the server closed the connection in the middle of its answer")

    # ---------------------------------------------------------------- framing

    def _advance(self) -> None:
        while self.answer is None:
            state = self._state
            if state == "head":
                if not self._read_head():
                    return
            elif state == "length":
                if not self._read_length():
                    return
            elif state == "chunk-size":
                if not self._read_chunk_size():
                    return
            elif state == "chunk-data":
                if not self._read_chunk_data():
                    return
            elif state == "trailer":
                if not self._read_trailer():
                    return
            else:  # until-close
                if self._buffer:
                    self._body.append(bytes(self._buffer))
                    self._buffer.clear()
                return

    def _read_head(self) -> bool:
        buffer = self._buffer
        found = _HEAD_END.search(buffer)
        # However the bytes were split: a head still open, or one that ended, past the limit.
        if (len(buffer) if found is None else found.end()) > MAX_HEAD:
            raise ProtocolError(f"response head larger than {MAX_HEAD} bytes")
        if found is None:
            return False
        # Empty lines before the status line are tolerated (RFC 9112 2.2).
        start = len(buffer) - len(buffer.lstrip(b"\r\n"))
        if start >= found.start():  # pragma: no mutate (start > found.start(): never equal)
            del buffer[:start]
            return True
        head = _parse_head(bytes(buffer[start : found.start()]))
        del buffer[: found.end()]
        if 100 <= head.status < 200:
            if head.status == 101:
                raise ProtocolError("the server switched protocols (101), not asked for")
            return True  # interim answer: the final one follows
        self._head = head
        if self._head_request or head.status in _NO_BODY:
            self._finish(reusable=head.keep_alive)
        elif head.chunked:
            self._state = "chunk-size"
        elif head.length is not None:
            self._chunk_left = head.length
            self._state = "length"
        else:
            self._state = "until-close"
        return True

    def _read_length(self) -> bool:
        buffer = self._buffer
        if len(buffer) < self._chunk_left:
            # Big bodies kept in parts, not one growing buffer.
            if len(buffer) >= 65536:  # pragma: no mutate (a size, not a rule)
                self._body.append(bytes(buffer))
                self._chunk_left -= len(buffer)
                buffer.clear()
            return False
        self._body.append(bytes(buffer[: self._chunk_left]))
        del buffer[: self._chunk_left]
        assert self._head is not None
        self._finish(reusable=self._head.keep_alive)
        return True  # pragma: no mutate (the answer ends the loop either way)

    def _line(self) -> bytes | None:
        buffer = self._buffer
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > MAX_CHUNK_LINE:
                raise ProtocolError("chunk line too long")
            return None
        line = bytes(buffer[:end]).rstrip(b"\r")
        del buffer[: end + 1]
        return line

    def _read_chunk_size(self) -> bool:
        line = self._line()
        if line is None:
            return False
        size = line.partition(b";")[0].strip(b" \t")
        if _HEX.fullmatch(size) is None:
            raise ProtocolError(f"bad chunk size: {line[:20]!r}")
        self._chunk_left = int(size, 16)
        self._state = "chunk-data" if self._chunk_left else "trailer"
        return True

    def _read_chunk_data(self) -> bool:
        buffer = self._buffer
        left = self._chunk_left
        if left:
            if not buffer:
                return False
            taken = bytes(buffer[:left])
            del buffer[: len(taken)]
            self._body.append(taken)
            self._chunk_left = left = left - len(taken)
            if left:
                return False  # pragma: no mutate (True: the next turn finds no data)
        # The chunk's data ends with CRLF (a bare LF tolerated).
        if buffer[:2] == b"\r\n":
            del buffer[:2]
        elif buffer[:1] == b"\n":
            del buffer[:1]
        elif buffer == b"" or buffer == b"\r":
            return False
        else:
            raise ProtocolError("chunk data not followed by CRLF")
        self._state = "chunk-size"
        return True

    def _read_trailer(self) -> bool:
        while True:
            line = self._line()
            if line is None:
                return False
            if not line:
                assert self._head is not None
                self._finish(reusable=self._head.keep_alive)
                return True  # pragma: no mutate (the answer ends the loop either way)

    def _finish(self, *, reusable: bool) -> None:
        head = self._head
        assert head is not None
        body = b"".join(self._body)
        self.answer = Answer(head.status, head.reason, head.headers, body)
        self._body = []  # pragma: no mutate (frees the parts; start() resets it)
        self._state = "done"  # pragma: no mutate (no state reads on once an answer is in)
        # Bytes after the answer (no request was pipelined) mean the stream is out of step.
        self.reusable = reusable and not self._buffer
