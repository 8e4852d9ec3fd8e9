"""The SDK's own transport (``transport="anyio"``) against real servers on loopback.

Wire bytes both ways, keep-alive and its expiry, stale and lost connections, every kind of
timeout, TLS with certificate verification, and the pool's promise: a request is handed a
connection reserved for it, so C requests at once open C connections (or wait their turn).
The errors keep the split the pipeline relies on: ``ConnectError``/``ConnectTimeout``/
``PoolTimeout`` only when nothing was written; anything later may have reached the server.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.raw_http import LocalCA, RawServer, Step, chunked, ok
from wechat_kf._connection import default_ssl_context
from wechat_kf._pool import AnyioTransport

pytestmark = pytest.mark.anyio

TIMEOUTS = httpx.Timeout(5.0).as_dict()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(transport: AnyioTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, timeout=5.0)


async def wait_until(condition: object) -> None:
    with anyio.fail_after(5):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 (another thread)
            await anyio.sleep(0.005)


# ---------------------------------------------------------------- wire bytes


async def test_direct_send_writes_exactly_these_bytes() -> None:
    with RawServer() as server:
        transport = AnyioTransport(2)
        target = transport.prepare("POST", f"{server.base_url}/cgi-bin/x?access_token=T@k")
        answer = await transport.send(target, '{"a":"é"}'.encode(), TIMEOUTS)
        get = transport.prepare("GET", f"{server.base_url}/cgi-bin/y?a=1")
        await transport.send(get, None, TIMEOUTS)
        await transport.send(get, None, TIMEOUTS)  # nothing but the head went before it
        await transport.aclose()
    assert answer.status_code == 200
    assert answer.content == b'{"errcode":0,"errmsg":"ok"}'
    host = f"127.0.0.1:{server.port}".encode()
    get_head = (
        b"GET /cgi-bin/y?a=1 HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"Accept: */*\r\nAccept-Encoding: identity\r\nUser-Agent: wechat_kf\r\n\r\n"
    )
    assert server.requests == [
        b"POST /cgi-bin/x?access_token=T@k HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"Accept: */*\r\nAccept-Encoding: identity\r\nUser-Agent: wechat_kf\r\n"
        b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n" + '{"a":"é"}'.encode(),
        get_head,
        get_head,
    ]
    assert server.connections == 1


async def test_httpx_requests_are_framed_by_length_even_when_streamed() -> None:
    async def body() -> object:
        yield b"part1-"
        yield b"part2"

    with RawServer() as server:
        async with client(AnyioTransport(2)) as http:
            response = await http.post(f"{server.base_url}/up", content=body())  # type: ignore[arg-type]
            files = await http.post(f"{server.base_url}/media", files={"media": ("a.png", b"PNG")})
    assert response.json() == {"errcode": 0, "errmsg": "ok"}
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == "OK"
    streamed = server.requests[0]
    assert b"transfer-encoding" not in streamed.lower()
    assert b"\r\nContent-Length: 11\r\n" in streamed
    assert streamed.endswith(b"\r\n\r\npart1-part2")
    assert b'name="media"; filename="a.png"' in server.requests[1]
    assert files.status_code == 200


@pytest.mark.parametrize(
    "answer",
    [
        ok(b'{"errcode":0}'),
        chunked(b'{"errcode"', b":0}"),
        b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"errcode":0}',
        b'HTTP/1.0 200 OK\r\nContent-Length: 13\r\n\r\n{"errcode":0}',
    ],
    ids=["length", "chunked", "close-delimited", "http/1.0"],
)
async def test_bodies_of_every_framing(answer: bytes) -> None:
    close_delimited = b"Content-Length" not in answer and b"chunked" not in answer
    with RawServer(Step(answer, close=close_delimited or b"HTTP/1.0" in answer)) as server:
        async with client(AnyioTransport(2)) as http:
            first = await http.get(f"{server.base_url}/a")
            second = await http.get(f"{server.base_url}/b")
    assert first.json() == {"errcode": 0}
    assert second.status_code == 200
    reused = b"chunked" in answer or answer.startswith(b"HTTP/1.1 200 OK\r\nContent-Type")
    assert server.connections == (1 if reused else 2)


async def test_gzip_answers_are_decoded_for_httpx() -> None:
    import gzip

    packed = gzip.compress(b'{"errcode":0}')
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(
        packed
    )
    with RawServer(Step(answer + packed)) as server:
        async with client(AnyioTransport(2)) as http:
            response = await http.get(server.base_url)
    assert response.json() == {"errcode": 0}


# ---------------------------------------------------------------- keep-alive


async def test_keep_alive_reuses_one_connection_and_expires() -> None:
    clock = Clock()
    with RawServer() as server:
        transport = AnyioTransport(4, keepalive_expiry=30.0, clock=clock)
        async with client(transport) as http:
            for _ in range(3):
                await http.get(server.base_url)
            assert server.connections == 1
            clock.now += 29
            await http.get(server.base_url)
            assert server.connections == 1
            clock.now += 31  # idle longer than the expiry: closed, never reused
            await http.get(server.base_url)
            assert server.connections == 2
            assert (transport.pool.connections, transport.pool.idle) == (1, 1)


async def test_server_closing_an_idle_connection_is_noticed_before_reuse() -> None:
    # The server answers as keep-alive, then closes (as servers do after their idle timeout):
    # the next request must not be written into the dead connection.
    with RawServer(Step(ok(), close=True)) as server:
        transport = AnyioTransport(4)
        async with client(transport) as http:
            await http.get(server.base_url)
            await wait_until(lambda: _peer_closed(transport))
            response = await http.get(server.base_url)
    assert response.status_code == 200
    assert server.connections == 2
    assert len(server.requests) == 2


def _peer_closed(transport: AnyioTransport) -> bool:
    queue = next(iter(transport.pool._idle.values()))
    return bool(queue) and queue[0].stale()


async def test_connection_close_answer_is_not_reused() -> None:
    with RawServer(Step(ok(b"{}", "Connection: close"))) as server:
        transport = AnyioTransport(4)
        async with client(transport) as http:
            await http.get(server.base_url)
            assert (transport.pool.connections, transport.pool.idle) == (0, 0)
            await http.get(server.base_url)
    assert server.connections == 2


# ---------------------------------------------------------------- lost connections


@pytest.mark.parametrize(
    ("step", "error", "text"),
    [
        (Step(reset=True), httpx.ReadError, "Connection"),
        (Step(close=True), httpx.RemoteProtocolError, "without answering"),
        (
            Step(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", close=True),
            httpx.RemoteProtocolError,
            "in the middle",
        ),
        (
            Step(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n{}"),
            httpx.RemoteProtocolError,
            "bad Content-Length",
        ),
    ],
    ids=["reset", "closed", "truncated", "malformed"],
)
async def test_connection_lost_after_sending_may_have_reached_the_server(
    step: Step, error: type[httpx.TransportError], text: str
) -> None:
    with RawServer(Step(ok()), step) as server:
        transport = AnyioTransport(4)
        async with client(transport) as http:
            await http.get(server.base_url)
            with pytest.raises(error, match=text) as info:
                await http.post(f"{server.base_url}/send?access_token=SECRET", content=b"{}")
            assert (transport.pool.connections, transport.pool.idle) == (0, 0)
            assert (await http.get(server.base_url)).status_code == 200  # a new connection
    assert not isinstance(info.value, httpx.ConnectError | httpx.TimeoutException)
    assert "SECRET" not in str(info.value)
    # A framing error stands alone; an OS error is chained (its errno, for whoever debugs).
    assert (info.value.__cause__ is None) is isinstance(info.value, httpx.RemoteProtocolError)
    assert len(server.requests) == 3  # the failed request did reach the server


async def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client(AnyioTransport(2)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")


async def test_unsupported_scheme() -> None:
    transport = AnyioTransport(2)
    with pytest.raises(httpx.UnsupportedProtocol):
        transport.prepare("GET", "ftp://example.com/x")


# ---------------------------------------------------------------- timeouts


async def test_read_timeout() -> None:
    with RawServer(Step(hang=True)) as server:
        transport = AnyioTransport(2)
        async with httpx.AsyncClient(transport=transport, timeout=0.1) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(server.base_url)
            assert transport.pool.connections == 0  # never reused: its answer may still come
            assert (await http.get(server.base_url)).status_code == 200
    assert server.connections == 2


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """Accepts connections and never reads or writes a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


async def test_write_timeout_when_the_server_never_reads(silent_listener: int) -> None:
    transport = AnyioTransport(2)
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(5.0, write=0.2)
    ) as http:
        with pytest.raises(httpx.WriteTimeout) as info:
            await http.post(f"http://127.0.0.1:{silent_listener}/", content=b"x" * 64_000_000)
    assert str(info.value) == "request not written within 0.2 s"
    assert transport.pool.connections == 0


async def test_connect_timeout_covers_the_tls_handshake(silent_listener: int) -> None:
    transport = AnyioTransport(2)
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(5.0, connect=0.1)
    ) as http:
        with pytest.raises(httpx.ConnectTimeout):
            await http.get(f"https://127.0.0.1:{silent_listener}/")
    assert transport.pool.connections == 0


async def test_pool_timeout_when_every_connection_is_busy() -> None:
    with RawServer(Step(ok(), delay=0.5)) as server:
        transport = AnyioTransport(1)
        async with (
            httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=0.05)) as http,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(http.get, server.base_url)
            await wait_until(lambda: len(server.requests) == 1)
            with pytest.raises(httpx.PoolTimeout, match="max_connections"):
                await http.get(server.base_url)
    assert len(server.requests) == 1  # the request that timed out never left


# ---------------------------------------------------------------- the pool


@pytest.mark.parametrize(("limit", "requests"), [(32, 32), (4, 50)])
async def test_concurrent_requests_each_get_a_reserved_connection(
    limit: int, requests: int
) -> None:
    with RawServer(default=Step(ok(), delay=0.02)) as server:
        transport = AnyioTransport(limit)
        async with client(transport) as http:
            await http.get(server.base_url)  # one idle connection, as after a token fetch
            statuses: list[int] = []

            async def one() -> None:
                statuses.append((await http.get(server.base_url)).status_code)

            async with anyio.create_task_group() as tg:
                for _ in range(requests):
                    tg.start_soon(one)
            assert statuses == [200] * requests
            assert server.connections == limit
            assert (transport.pool.connections, transport.pool.idle) == (limit, limit)


async def test_growing_the_pool_lets_waiters_open_connections() -> None:
    with RawServer(default=Step(ok(), delay=0.05)) as server:
        transport = AnyioTransport(1)
        async with client(transport) as http:
            async with anyio.create_task_group() as tg:
                for _ in range(3):
                    tg.start_soon(http.get, server.base_url)
                await wait_until(lambda: len(server.requests) == 1)
                assert transport.ensure_capacity(3) == 3
            assert server.connections == 3
            assert transport.ensure_capacity(2) == 3  # never shrinks


async def test_cancelled_request_gives_its_connection_back() -> None:
    with RawServer(Step(hang=True)) as server:
        transport = AnyioTransport(1)
        async with client(transport) as http:
            with anyio.move_on_after(0.1):
                await http.get(server.base_url)
            assert transport.pool.connections == 0  # the half-used connection was closed
            assert (await http.get(server.base_url)).status_code == 200
    assert server.connections == 2


async def test_closed_transport_refuses() -> None:
    transport = AnyioTransport(1)
    await transport.aclose()
    target = transport.prepare("GET", "http://127.0.0.1:1/")
    with pytest.raises(httpx.ConnectError, match="closed"):
        await transport.send(target, None, TIMEOUTS)


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(Path(tmp_path_factory.mktemp("ca")))


async def test_tls_with_a_trusted_ca(ca: LocalCA) -> None:
    with RawServer(tls=ca.server_context()) as server:
        transport = AnyioTransport(2, ssl_context=ca.client_context())
        async with client(transport) as http:
            for _ in range(3):
                response = await http.get(f"{server.base_url}/tls")
    assert response.json() == {"errcode": 0, "errmsg": "ok"}
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /tls HTTP/1.1\r\n")


async def test_tls_refuses_a_certificate_it_cannot_verify(ca: LocalCA) -> None:
    with RawServer(tls=ca.server_context()) as server:
        async with client(AnyioTransport(2)) as http:  # certifi's CAs: not ours
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(server.base_url)
    with RawServer(tls=ca.server_context("api.example.com")) as other:
        async with client(AnyioTransport(2, ssl_context=ca.client_context())) as http:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.get(other.base_url)  # trusted CA, but not 127.0.0.1's certificate
    assert server.requests == other.requests == []


async def test_default_context_trusts_ssl_cert_file(
    ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca_file))
    context = default_ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    with RawServer(tls=ca.server_context()) as server:
        async with client(AnyioTransport(2)) as http:
            assert (await http.get(server.base_url)).status_code == 200


# ---------------------------------------------------------------- boundaries, texts, defaults


def test_defaults_and_origins() -> None:
    transport = AnyioTransport()
    assert (transport.max_connections, transport.pool._expiry) == (100, 30.0)
    assert transport.prepare("GET", "http://example.com/x").origin == (b"http", b"example.com", 80)
    assert transport.prepare("GET", "https://example.com/x").origin == (
        b"https",
        b"example.com",
        443,
    )
    assert transport.prepare("GET", "https://example.com:8443/").origin[2] == 8443
    head = transport.prepare("GET", "https://example.com/x?a=1").head
    assert head.startswith(b"GET /x?a=1 HTTP/1.1\r\nHost: example.com\r\n")
    assert head.endswith(b"User-Agent: wechat_kf\r\n")  # the body's framing follows
    with pytest.raises(httpx.UnsupportedProtocol, match="unsupported URL scheme 'ws'"):
        transport.prepare("GET", "ws://example.com/")


async def test_an_idle_connection_is_reused_up_to_the_expiry_itself() -> None:
    clock = Clock()
    with RawServer() as server:
        transport = AnyioTransport(4, keepalive_expiry=30.0, clock=clock)
        async with client(transport) as http:
            await http.get(server.base_url)
            clock.now += 30  # idle exactly the expiry: still kept
            await http.get(server.base_url)
            assert server.connections == 1
            clock.now += 30.001
            await http.get(server.base_url)
            assert server.connections == 2
            assert (transport.pool.connections, transport.pool.idle) == (1, 1)


async def test_without_an_expiry_idle_connections_are_kept_for_ever() -> None:
    clock = Clock()
    with RawServer() as server:
        transport = AnyioTransport(4, keepalive_expiry=None, clock=clock)
        async with client(transport) as http:
            await http.get(server.base_url)
            clock.now += 10**9
            await http.get(server.base_url)
    assert server.connections == 1


async def test_bodies_are_framed_by_method_as_httpx_does() -> None:
    with RawServer() as server:
        async with client(AnyioTransport(2)) as http:
            await http.get(f"{server.base_url}/g")
            await http.post(f"{server.base_url}/p")
            await http.request("DELETE", f"{server.base_url}/d", content=b"xy")
    get, post, delete = server.requests
    assert b"content-length" not in get.lower()
    assert b"\r\nContent-Length: 0\r\n" in post
    assert delete.endswith(b"\r\nContent-Length: 2\r\n\r\nxy")


async def test_a_head_request_reads_no_body_and_keeps_the_connection() -> None:
    with RawServer(
        Step(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        Step(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
    ) as server:
        transport = AnyioTransport(2)
        async with client(transport) as http:
            response = await http.head(server.base_url)
            assert (response.status_code, response.content) == (200, b"")
            answer = await transport.send(
                transport.prepare("HEAD", server.base_url), None, TIMEOUTS
            )
            assert (answer.status_code, answer.content) == (200, b"")
            assert (await http.get(server.base_url)).status_code == 200
    assert server.connections == 1


async def test_an_answer_without_a_reason_phrase_gets_httpxs() -> None:
    with RawServer(
        Step(b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"),
        Step(b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 0\r\n\r\n"),
    ) as server:
        async with client(AnyioTransport(2)) as http:
            response = await http.get(server.base_url)
            own = await http.get(server.base_url)
    assert (response.status_code, response.reason_phrase) == (404, "Not Found")
    assert (own.status_code, own.reason_phrase) == (200, "Fine Thanks")


async def test_a_full_pool_closes_an_idle_connection_to_another_origin() -> None:
    with RawServer() as first, RawServer() as second:
        transport = AnyioTransport(1)
        async with client(transport) as http:
            await http.get(first.base_url)
            assert transport.pool.idle == 1
            assert (await http.get(second.base_url)).status_code == 200
            assert (transport.pool.connections, transport.pool.idle) == (1, 1)
            assert (await http.get(first.base_url)).status_code == 200
    assert (first.connections, second.connections) == (2, 1)


async def test_timeouts_say_which_and_how_long(silent_listener: int) -> None:
    with RawServer(Step(hang=True)) as server:
        async with httpx.AsyncClient(transport=AnyioTransport(2), timeout=0.05) as http:
            with pytest.raises(httpx.ReadTimeout) as read:
                await http.get(server.base_url)
    assert str(read.value) == "no answer within 0.05 s"
    async with httpx.AsyncClient(
        transport=AnyioTransport(2), timeout=httpx.Timeout(5.0, connect=0.05)
    ) as http:
        with pytest.raises(httpx.ConnectTimeout) as connect:
            await http.get(f"https://127.0.0.1:{silent_listener}/")
    assert str(connect.value) == "no connection within 0.05 s"


async def test_the_pool_timeout_says_how_long_and_how_many() -> None:
    with RawServer(Step(hang=True)) as server:
        transport = AnyioTransport(1)
        async with (
            httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=0.05)) as http,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(http.get, server.base_url)
            await wait_until(lambda: len(server.requests) == 1)
            with pytest.raises(httpx.PoolTimeout) as info:
                await http.get(server.base_url)
            tg.cancel_scope.cancel()
    assert str(info.value) == "no connection free within 0.05 s (1 in use; raise max_connections)"


async def test_a_connection_says_where_it_goes_and_whether_it_is_usable() -> None:
    with RawServer() as server:
        transport = AnyioTransport(2)
        async with client(transport) as http:
            await http.get(server.base_url)
            (connection,) = next(iter(transport.pool._idle.values()))
            assert repr(connection) == f"<Connection http://127.0.0.1:{server.port} usable>"
            await transport.aclose()
            assert repr(connection) == f"<Connection http://127.0.0.1:{server.port} broken>"


@pytest.fixture
def cert_dir(ca: LocalCA, tmp_path: Path) -> Path:
    """A certificate directory (``SSL_CERT_DIR``) holding the local CA, named by hash."""
    import shutil
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to name the certificate directory's files")
    (tmp_path / "ca.pem").write_bytes(ca.ca_file.read_bytes())
    subprocess.run([openssl, "rehash", str(tmp_path)], check=True, capture_output=True)
    return tmp_path


async def test_default_context_trusts_ssl_cert_dir(
    ca: LocalCA, cert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "")  # empty: not set
    monkeypatch.setenv("SSL_CERT_DIR", str(cert_dir))
    assert default_ssl_context().verify_mode is ssl.CERT_REQUIRED
    with RawServer(tls=ca.server_context()) as server:
        async with client(AnyioTransport(2)) as http:
            assert (await http.get(server.base_url)).status_code == 200


def test_default_context_is_certifis_bundle_without_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import certifi

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = default_ssl_context()
    expected = ssl.create_default_context(cafile=certifi.where()).get_ca_certs()
    assert len(expected) > 50
    assert context.get_ca_certs() == expected
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED


async def test_a_connection_freed_while_only_other_origins_wait_makes_room_for_them() -> None:
    with RawServer(Step(ok(), delay=0.2)) as busy, RawServer() as other:
        transport = AnyioTransport(1)
        statuses: list[int] = []
        async with client(transport) as http:

            async def get(url: str) -> None:
                statuses.append((await http.get(url)).status_code)

            async with anyio.create_task_group() as tg:
                tg.start_soon(get, busy.base_url)
                await wait_until(lambda: len(busy.requests) == 1)
                tg.start_soon(get, other.base_url)  # waits: the one slot is busy's
                await wait_until(lambda: len(transport.pool._waiters) == 1)
            assert statuses == [200, 200]
            assert (len(busy.requests), len(other.requests)) == (1, 1)  # each to its own
            assert (transport.pool.connections, transport.pool.idle) == (1, 1)  # other's
            await http.get(other.base_url)
    assert (busy.connections, other.connections) == (1, 1)


async def test_the_read_timeout_is_renewed_by_every_segment() -> None:
    # Three parts 0.6 s apart: 1.2 s in all, never 1 s without a byte.
    answer = ok(b'{"errcode":0,"errmsg":"ok"}')
    with RawServer(Step(answer, trickle=((10, len(answer) - 5), 0.6))) as server:
        transport = AnyioTransport(2)
        async with httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(30.0, read=1.0)
        ) as http:
            response = await http.get(server.base_url)
    assert response.json() == {"errcode": 0, "errmsg": "ok"}


async def test_no_timeout_at_all_waits() -> None:
    trickled = Step(ok(), trickle=((10,), 0.05))  # in two parts
    with RawServer(Step(ok(), delay=0.05), trickled) as server:
        transport = AnyioTransport(2)
        async with httpx.AsyncClient(transport=transport, timeout=None) as http:
            assert (await http.get(server.base_url)).status_code == 200
            answer = await transport.send(
                transport.prepare("POST", server.base_url), b"{}", httpx.Timeout(None).as_dict()
            )
    assert answer.status_code == 200


async def test_a_waiter_that_gave_up_is_passed_over() -> None:
    with RawServer(Step(ok(), delay=0.3)) as server:
        transport = AnyioTransport(1)
        results: list[object] = []
        async with client(transport) as http:

            async def get(pool_timeout: float) -> None:
                try:
                    response = await http.get(
                        server.base_url, timeout=httpx.Timeout(5.0, pool=pool_timeout)
                    )
                    results.append(response.status_code)
                except httpx.PoolTimeout:
                    results.append("gave up")

            async with anyio.create_task_group() as tg:
                tg.start_soon(get, 5.0)
                await wait_until(lambda: len(server.requests) == 1)
                tg.start_soon(get, 0.01)  # gives up while the first is answered
                await wait_until(lambda: results == ["gave up"])
                tg.start_soon(get, 5.0)
                await wait_until(lambda: len(transport.pool._waiters) == 2)  # one gone
            assert results == ["gave up", 200, 200]
            assert (transport.pool.connections, transport.pool.idle) == (1, 1)
    assert server.connections == 1  # the connection was handed to the live waiter


async def test_closing_the_transport_refuses_a_request_waiting_for_a_slot() -> None:
    with RawServer(Step(ok(), delay=0.2)) as server:
        transport = AnyioTransport(1)
        errors: list[BaseException] = []
        async with client(transport) as http:

            async def waiting() -> None:
                try:
                    await http.get(server.base_url)
                except httpx.ConnectError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(http.get, server.base_url)
                await wait_until(lambda: len(server.requests) == 1)
                tg.start_soon(waiting)
                await wait_until(lambda: len(transport.pool._waiters) == 1)
                await transport.aclose()
            assert [str(error) for error in errors] == ["the HTTP transport is closed"]
            assert transport.pool.connections == 0
    assert len(server.requests) == 1


@pytest.fixture
def resetting_listener() -> Iterator[int]:
    """Accepts connections, reads the first bytes of each, then resets it (RST)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                conn.recv(1024)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def test_a_connection_reset_while_writing_is_a_write_error(resetting_listener: int) -> None:
    # On trio a send waits for the socket: the reset fails the write. (asyncio buffers the
    # body and meets the reset when it reads: a ReadError, which means the same.)
    async def post() -> BaseException:
        transport = AnyioTransport(2)
        async with httpx.AsyncClient(transport=transport, timeout=5.0) as http:
            url = f"http://127.0.0.1:{resetting_listener}/"
            with pytest.raises(httpx.WriteError) as info:
                await http.post(url, content=b"x" * 64_000_000)
        assert transport.pool.connections == 0
        return info.value

    error = anyio.run(post, backend="trio")
    assert not isinstance(error, httpx.ConnectError)  # it may have reached the server
    assert str(error).startswith(("ConnectionResetError: ", "BrokenPipeError: "))


async def test_a_connection_closed_under_its_exchange_is_a_read_error() -> None:
    from wechat_kf._connection import Connection

    with RawServer(Step(hang=True)) as server:
        connection = await Connection.open((b"http", b"127.0.0.1", server.port), None, 5.0)
        errors: list[BaseException] = []

        async def exchange() -> None:
            try:
                await connection.exchange(
                    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"",
                    head_request=False,
                    write_timeout=5.0,
                    read_timeout=5.0,
                )
            except httpx.ReadError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(exchange)
            await wait_until(lambda: len(server.requests) == 1)
            await connection.aclose()
    assert [str(error) for error in errors] == ["the connection was closed"]
    assert connection.broken


def test_failures_are_described_by_their_own_words() -> None:
    from wechat_kf._connection import _describe

    assert _describe(ConnectionResetError(104, "Connection reset by peer")) == (
        "ConnectionResetError: [Errno 104] Connection reset by peer"
    )
    assert _describe(anyio.BrokenResourceError()) == "BrokenResourceError"
    broken = anyio.BrokenResourceError()
    tls = ssl.SSLError(1, "[SSL] record layer failure")
    broken.__cause__ = tls
    assert _describe(broken) == f"SSLError: {tls}"
    refused = OSError("All connection attempts failed")
    refused.__cause__ = ConnectionRefusedError(111, "Connect call failed")
    assert _describe(refused) == "OSError: All connection attempts failed"


async def test_tls_answers_that_end_with_the_connection_need_no_close_notify(ca: LocalCA) -> None:
    # The server closes without TLS's close_notify (as many do): the body ends there.
    answer = b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"errcode":0}'
    with RawServer(Step(answer, close=True), tls=ca.server_context()) as server:
        transport = AnyioTransport(2, ssl_context=ca.client_context())
        async with client(transport) as http:
            response = await http.get(server.base_url)
    assert response.json() == {"errcode": 0}


async def test_growing_the_pool_grants_exactly_the_new_slots() -> None:
    with RawServer(default=Step(ok(), delay=0.1)) as server:
        transport = AnyioTransport(1)
        async with client(transport) as http:
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(http.get, server.base_url)
                await wait_until(lambda: len(transport.pool._waiters) == 3)
                assert transport.ensure_capacity(2) == 2
                assert transport.pool.connections == 2  # one slot more: one waiter opens
            assert (transport.pool.connections, transport.pool.idle) == (2, 2)
