"""The SDK transport's HTTP/1.1 framing: what it reads from servers, byte for byte.

h11 (httpx's own parser) is the oracle: any valid response, split anywhere, frames to the same
status, header fields and body in both. Then the drift real servers show (tolerated) and the
framings that cannot be trusted (refused, the connection never reused).
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_kf._http11 import MAX_HEAD, Answer, ProtocolError, ResponseReader, chunk, request_head


def read(data: bytes, *, pieces: list[int] | None = None, head: bool = False, eof: bool = False):
    reader = ResponseReader()
    reader.start(head=head)
    cuts = sorted(set(pieces or []))
    start = 0
    for cut in [*cuts, len(data)]:
        reader.feed(data[start:cut])
        start = cut
    if eof:
        reader.eof()
    return reader


def h11_read(
    data: bytes, *, method: bytes = b"GET"
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    status, headers, body = 0, [], b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status, headers = event.status_code, list(event.headers.raw_items())
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return status, headers, body


_names = st.sampled_from([b"X-Trace", b"Set-Thing", b"x-a", b"Server", b"Date", b"ETag"])
_values = st.binary(min_size=0, max_size=30).map(
    lambda b: bytes(c for c in b if 0x21 <= c <= 0x7E).strip()
)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, int, bytes, str]:
    status = draw(st.sampled_from([200, 201, 400, 404, 500, 503]))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    fields = draw(st.lists(st.tuples(_names, _values), max_size=5))
    head = [b"HTTP/1.1 %d Whatever Reason" % status]
    head += [name + b": " + value for name, value in fields]
    if framing == "length":
        head.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        head.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 50), max_size=10))
        parts, at = [], 0
        for size in sizes:
            if at < len(body):
                parts.append(body[at : at + size])
                at += size
        if at < len(body):
            parts.append(body[at:])
        payload = b"".join(chunk(part) for part in parts) + chunk(b"")
    else:
        head.append(b"Connection: close")
        payload = body
    return b"\r\n".join(head) + b"\r\n\r\n" + payload, status, body, framing


@settings(max_examples=300, deadline=None)
@given(responses(), st.lists(st.integers(0, 700), max_size=8))
def test_frames_like_h11_wherever_the_bytes_are_split(
    response: tuple[bytes, int, bytes, str], cuts: list[int]
) -> None:
    data, status, body, framing = response
    reader = read(data, pieces=[c for c in cuts if c < len(data)], eof=framing == "close")
    answer = reader.answer
    assert answer is not None
    expected_status, expected_headers, expected_body = h11_read(data)
    assert (
        (answer.status_code, answer.content) == (expected_status, expected_body) == (status, body)
    )
    assert answer.raw_headers == expected_headers
    assert reader.reusable is (framing != "close")


def test_common_answer_in_one_segment() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    reader = read(data)
    assert reader.answer is not None
    assert (reader.answer.status_code, reader.answer.reason, reader.answer.content) == (
        200,
        b"OK",
        b"{}",
    )
    assert reader.answer.headers.get("content-type") == "application/json"
    assert reader.answer.headers.get("Retry-After") is None
    assert reader.reusable


def test_answer_waits_for_the_whole_body() -> None:
    reader = ResponseReader()
    reader.start()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert reader.answer is None
    reader.feed(b"cde")
    assert reader.answer is not None
    assert reader.answer.content == b"abcde"


@pytest.mark.parametrize(
    ("data", "body", "reusable"),
    [
        # bare LF line ends, obsolete line folding, a repeated identical Content-Length
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nhi", b"hi", True),
        (b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n", b"", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nhi", b"hi", True),
        # no reason phrase; chunk extensions and trailers
        (b"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", b"x", True),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2;ext=1\r\nhi\r\n0\r\nX-Trailer: t\r\n\r\n",
            b"hi",
            True,
        ),
        # interim answers are skipped
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", b"x", True),
        # the server says it closes; HTTP/1.0 closes unless it says keep-alive
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", b"x", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", b"x", False),
        (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx", b"x", True),
        # Transfer-Encoding wins over Content-Length, and such a connection is not reused
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\nx\r\n0\r\n\r\n",
            b"x",
            False,
        ),
        # bytes after the answer: out of step, never reused
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxJUNK", b"x", False),
    ],
)
def test_tolerated_drift(data: bytes, body: bytes, reusable: bool) -> None:
    reader = read(data)
    assert reader.answer is not None
    assert reader.answer.content == body
    assert reader.reusable is reusable


def test_close_delimited_and_other_codings_read_to_the_end() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", eof=True)
    assert reader.answer is not None
    assert reader.answer.content == b"abc"
    assert not reader.reusable


@pytest.mark.parametrize(
    ("status", "head_request"), [(204, False), (304, False), (200, True)], ids=str
)
def test_answers_without_body(status: int, head_request: bool) -> None:
    reader = read(b"HTTP/1.1 %d X\r\nContent-Length: 10\r\n\r\n" % status, head=head_request)
    assert reader.answer is not None
    assert reader.answer.content == b""
    assert reader.reusable


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}", "bad Content-Length: b'abc'"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length: b'-1'"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 30 + b"x\r\n\r\n",
            "bad Content-Length: b'" + "9" * 20 + "'",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
            "conflicting Content-Length values",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "bad chunk size: b'zz'",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"q" * 30 + b"\r\n",
            "bad chunk size: b'" + "q" * 20 + "'",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy",
            "chunk data not followed by CRLF",
        ),
        (b"HTTP/2 200 OK\r\n\r\n", "not an HTTP/1.1 status line: b'HTTP/2 200 OK'"),
        (
            b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5 and more\r\n\r\n",
            "not an HTTP/1.1 status line: b'SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5'",
        ),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", "bad status code in b'HTTP/1.1 2x0 OK'"),
        (
            b"HTTP/1.1 2x0 A rather long reason phrase, longer than forty\r\n\r\n",
            "bad status code in b'HTTP/1.1 2x0 A rather long reason phrase'",
        ),
        (b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "bad header field: b'Bad Header: x'"),
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "bad header field: b'NoColon'"),
        (
            b"HTTP/1.1 200 OK\r\nNo-Colon-In-This-Rather-Long-Header-Line, longer\r\n\r\n",
            "bad header field: b'No-Colon-In-This-Rather-Long-Header-Line'",
        ),
        (
            b"HTTP/1.1 200 OK\r\n folded: first\r\n\r\n",
            "header continuation before any header field",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "the server switched protocols (101), not asked for",
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 300 + b"\r\n", "more than 256 header fields"),
    ],
)
def test_untrustworthy_framing_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        read(data)
    assert str(info.value) == message


def _head_of(size: int) -> bytes:
    """A response head of exactly ``size`` bytes (its final empty line included)."""
    start, end = b"HTTP/1.1 200 OK\r\nX: ", b"\r\nContent-Length: 1\r\n\r\n"
    return start + b"y" * (size - len(start) - len(end)) + end


@pytest.mark.parametrize("pieces", [[], [100], [65535], [65536], [65537]], ids=str)
def test_a_head_of_64_kib_is_read_one_byte_more_is_refused(pieces: list[int]) -> None:
    assert MAX_HEAD == 64 * 1024
    reader = read(_head_of(65536) + b"x", pieces=pieces)
    assert reader.answer is not None
    assert reader.answer.content == b"x"
    with pytest.raises(ProtocolError, match="response head larger than 65536 bytes"):
        read(_head_of(65537) + b"x", pieces=pieces)


def test_head_too_large_is_refused() -> None:
    with pytest.raises(ProtocolError, match="larger than"):
        read(b"HTTP/1.1 200 OK\r\nX: " + b"y" * (MAX_HEAD + 10))
    reader = ResponseReader()
    reader.start()
    reader.feed(b"HTTP/1.1 200 OK\r\nX: " + b"y" * (MAX_HEAD - 30))  # still open, under it
    assert reader.answer is None
    with pytest.raises(ProtocolError, match="larger than"):
        reader.feed(b"y" * 31)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "without answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "in the middle of its answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "in the middle of its answer"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "in the middle of its answer",
        ),
    ],
)
def test_closed_before_the_answer_ends(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        read(data, eof=True)
    assert str(info.value) == f"the server closed the connection {message}"


def test_unrequested_bytes_before_a_request_are_refused() -> None:
    reader = ResponseReader()
    reader.start()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxY")
    with pytest.raises(ProtocolError) as info:
        reader.start()
    assert str(info.value) == "data received before the request was sent"


def test_request_head_and_chunks() -> None:
    head = request_head(b"POST", b"/p?q=1", [(b"Host", b"h"), (b"Content-Length", b"2")])
    assert head == b"POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n"
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"") == b"0\r\n\r\n"


def test_answer_repr_and_headers() -> None:
    answer = Answer(429, b"Too Many", [(b"Retry-After", b"3")], b"{}")
    assert answer.headers.get("retry-after") == "3"
    assert repr(answer) == "<Answer 429 (2 bytes)>"


# ---------------------------------------------------------------- the limits, at their boundaries


def test_256_header_fields_are_read_257_are_refused() -> None:
    def with_fields(n: int) -> bytes:
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(n - 1))
        return b"HTTP/1.1 200 OK\r\n" + fields + b"Content-Length: 1\r\n\r\nx"

    reader = read(with_fields(256))
    assert reader.answer is not None
    assert len(reader.answer.raw_headers) == 256
    with pytest.raises(ProtocolError, match="more than 256 header fields"):
        read(with_fields(257))


def test_a_chunk_line_of_4_kib_waits_one_byte_more_is_refused() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    line = b"1;" + b"e" * (4096 - 2)  # a chunk size with a long extension, no LF yet
    reader = read(head + line)
    assert reader.answer is None
    reader.feed(b"\r\nx\r\n0\r\n\r\n")
    assert reader.answer is not None
    assert reader.answer.content == b"x"
    with pytest.raises(ProtocolError) as info:
        read(head + line + b"e")
    assert str(info.value) == "chunk line too long"
    trailer = head + b"0\r\nX-Trailer: " + b"t" * 5000  # trailer lines have the same limit
    with pytest.raises(ProtocolError, match="chunk line too long"):
        read(trailer)


def test_a_chunk_size_has_at_most_16_hex_digits() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    reader = read(head + b"000000000000000A;a=1;b=2\r\n0123456789\r\n0\r\n\r\n")
    assert reader.answer is not None
    assert reader.answer.content == b"0123456789"
    for size in (b"0000000000000000A", b"", b"-1", b"0x1", b"1 1", b"1X", b"1\x0c"):
        with pytest.raises(ProtocolError, match="bad chunk size"):
            read(head + size + b"\r\n")


@pytest.mark.parametrize(
    "status_line",
    [b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 200OK", b"HTTP/1.1", b"HTTP/1.1 +20 OK"],
)
def test_a_status_code_is_three_digits_then_a_space_or_the_end(status_line: bytes) -> None:
    with pytest.raises(ProtocolError, match="bad status code"):
        read(status_line + b"\r\nContent-Length: 0\r\n\r\n")


def test_status_and_reason_phrase() -> None:
    reader = read(b"HTTP/1.1 404 Not Found X \r\nContent-Length: 0\r\n\r\n")
    assert reader.answer is not None
    assert (reader.answer.status_code, reader.answer.reason) == (404, b"Not Found X ")
    reader = read(b"HTTP/1.0 503 \r\nContent-Length: 0\r\n\r\n")
    assert reader.answer is not None
    assert (reader.answer.status_code, reader.answer.reason) == (503, b"")


def test_header_values_are_trimmed_and_folded_lines_joined() -> None:
    reader = read(
        b"HTTP/1.1 200 OK\r\nX-A:\t one \t\r\n\ttwo\t\r\n  threeX\x0c\r\nX-B:fourX\r\n"
        b"X-C: v\x0c\r\nContent-Length: 0\r\n\r\n"
    )
    assert reader.answer is not None
    assert reader.answer.raw_headers == [
        (b"X-A", b"one two threeX\x0c"),  # only spaces and tabs are trimmed
        (b"X-B", b"fourX"),
        (b"X-C", b"v\x0c"),
        (b"Content-Length", b"0"),
    ]
    assert reader.reusable


@pytest.mark.parametrize(
    ("codings", "body", "reusable"),
    [
        # the final coding decides, across repeated fields and lists, whatever the case
        ([b"gzip", b"chunked"], b"x", True),
        ([b"gzip, Chunked"], b"x", True),
        ([b"chunked", b"gzip"], b"1\r\nx\r\n0\r\n\r\n", False),  # close-delimited
        ([b"chunked, identity "], b"1\r\nx\r\n0\r\n\r\n", False),
        ([b"gzip, deflate, chunked"], b"x", True),
        ([b"gzip,chunked"], b"x", True),
        ([b"gzip, chunked\x0c"], b"1\r\nx\r\n0\r\n\r\n", False),  # not "chunked"
        ([b"gzip, Xchunked"], b"1\r\nx\r\n0\r\n\r\n", False),
    ],
)
def test_transfer_codings_the_last_one_frames_the_body(
    codings: list[bytes], body: bytes, reusable: bool
) -> None:
    fields = b"".join(b"Transfer-Encoding: %s\r\n" % coding for coding in codings)
    data = b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n"
    payload = b"1\r\nx\r\n0\r\n\r\n"
    reader = read(data + payload, eof=not reusable)
    assert reader.answer is not None
    assert reader.answer.content == body
    assert reader.reusable is reusable


@pytest.mark.parametrize(
    ("field", "reusable"),
    [
        (b"Connection: keep-alive, Close", False),
        (b"Connection: upgrade\r\nConnection: close", False),
        (b"Connection: closed", True),  # a token, not a substring
        (b"Connection: keep-alive,close", False),
        (b"Connection: Xclose, close\x0c", True),
        (b"Connection: keep-alive", True),
    ],
)
def test_connection_close_is_a_token_of_any_connection_field(field: bytes, reusable: bool) -> None:
    reader = read(b"HTTP/1.1 200 OK\r\n" + field + b"\r\nContent-Length: 1\r\n\r\nx")
    assert reader.answer is not None
    assert reader.reusable is reusable


@pytest.mark.parametrize(
    "field",
    [b"Connection: close", b"Connection: keep-alive, close", b"Connection: other"],
)
def test_http_1_0_is_reused_only_when_it_says_keep_alive(field: bytes) -> None:
    reader = read(b"HTTP/1.0 200 OK\r\n" + field + b"\r\nContent-Length: 1\r\n\r\nx")
    assert reader.answer is not None
    assert not reader.reusable


def test_content_length_values_are_trimmed_and_a_list_must_agree() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\nContent-Length:\t2 ,2\t\r\n\r\nhi")
    assert reader.answer is not None
    assert reader.answer.content == b"hi"
    with pytest.raises(ProtocolError, match="conflicting Content-Length"):
        read(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nhi")
    for value in (b"", b"+2", b"2.0", "２".encode(), b"X2", b"2\x0c"):
        with pytest.raises(ProtocolError, match="bad Content-Length"):
            read(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\nhi")


def test_empty_lines_before_the_status_line_are_skipped() -> None:
    for lead in (b"\r\n", b"\n", b"\r\n\r\n", b"\n\n\r\n"):
        reader = read(lead + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", pieces=[1])
        assert reader.answer is not None
        assert reader.answer.content == b"x"
        assert reader.reusable


def test_a_big_body_arrives_whole_in_any_pieces() -> None:
    body = bytes(range(256)) * 1024  # 256 KiB
    data = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for pieces in ([], [70_000], [40, 65_600, 65_600 + 65_536, 200_000]):
        reader = read(data, pieces=pieces)
        assert reader.answer is not None
        assert reader.answer.content == body
        assert reader.reusable


def test_chunk_data_ending_split_between_cr_and_lf() -> None:
    reader = ResponseReader()
    reader.start()
    for piece in (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi", b"\r", b"\n"):
        reader.feed(piece)
    assert reader.answer is None
    reader.feed(b"0\r\n\r\n")
    assert reader.answer is not None
    assert reader.answer.content == b"hi"
    assert reader.reusable
    reader = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nhi\n0\n\n")
    assert reader.answer is not None
    assert reader.answer.content == b"hi"


def test_eof_after_the_answer_keeps_it_and_ends_reuse() -> None:
    reader = read(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert reader.reusable
    reader.eof()  # the server closed right after answering
    assert reader.answer is not None
    assert reader.answer.content == b"x"
    assert not reader.reusable
    reader = read(b"HTTP/1.1 200 OK\r\n\r\nall of it", eof=True)  # close-delimited
    assert reader.answer is not None
    assert reader.answer.content == b"all of it"
    assert not reader.reusable


def test_the_reader_serves_one_answer_after_another() -> None:
    reader = ResponseReader()
    for n in range(3):
        reader.start(head=n == 1)
        assert (reader.answer, reader.started, reader.reusable) == (None, False, False)
        reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + (b"" if n == 1 else b"x"))
        assert reader.started
        assert reader.answer is not None
        assert reader.answer.content == (b"" if n == 1 else b"x")
        assert reader.reusable
    reader.feed(b"")
    assert reader.answer is not None


@pytest.mark.parametrize(
    ("data", "head_request"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
        (b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\n\r\n", True),
    ],
)
def test_an_answer_without_body_or_framing_keeps_the_connection(
    data: bytes, head_request: bool
) -> None:
    reader = read(data, head=head_request)
    assert reader.answer is not None
    assert reader.answer.content == b""
    assert reader.reusable
    assert not read(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").reusable


def test_every_framing_fed_one_byte_at_a_time() -> None:
    answers = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", b"abc"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2;x=y\r\nab\r\n1\nc\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n",
            b"abc",
        ),
    ]
    for data, body in answers:
        reader = read(data, pieces=list(range(1, len(data))))
        assert reader.answer is not None
        assert reader.answer.content == body
        assert reader.reusable
    reader = read(b"HTTP/1.1 200 OK\r\n\r\nabc", pieces=[1, 2, 3, 20, 21, 22], eof=True)
    assert reader.answer is not None
    assert reader.answer.content == b"abc"
    assert not reader.reusable
