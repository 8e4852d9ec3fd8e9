"""A scripted HTTP/1.1 server on a loopback port, for the transport's framing and fault tests.

Each request it reads (head plus ``Content-Length`` or chunked body) takes the next step of
its script: bytes to answer (exactly as given: any framing, malformed too), a delay, a reset
(RST), a close, or silence. It records every request's raw bytes and every connection, runs in
a thread (so it serves clients on asyncio and trio alike), and can speak TLS with a
certificate issued by :class:`LocalCA`.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import itertools
import socket
import ssl
import struct
import threading
from collections import deque
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def ok(body: bytes = b'{"errcode":0,"errmsg":"ok"}', *extra: str) -> bytes:
    """A length-delimited 200 answer."""
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*head, *extra]) + "\r\n\r\n").encode() + body


def chunked(*parts: bytes, extra: str = "") -> bytes:
    """A chunked 200 answer of ``parts``."""
    head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + extra + "\r\n"
    return head.encode() + b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@attrs.define
class Step:
    """What the server does with one request."""

    answer: bytes = b""
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: Close the connection after answering (FIN), or instead of answering if no answer.
    close: bool = False
    #: Reset the connection (RST) instead of answering.
    reset: bool = False
    #: Never answer (the connection stays open).
    hang: bool = False
    #: Send the answer in parts (split at these offsets), this many seconds apart.
    trickle: tuple[tuple[int, ...], float] | None = None


class RawServer:
    """Serves ``script`` (one :class:`Step` per request, in order; then ``default``)."""

    def __init__(
        self, *steps: Step, default: Step | None = None, tls: ssl.SSLContext | None = None
    ):
        self.script: deque[Step] = deque(steps)
        self.default = default or Step(ok())
        self.requests: list[bytes] = []
        self.connections = 0
        self._tls = tls
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def add(self, *steps: Step) -> None:
        self.script.extend(steps)

    def __enter__(self) -> RawServer:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        # Failed TLS handshakes (the tests' untrusting clients) are expected here.
        loop.set_exception_handler(lambda loop, context: None)
        server = loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._tls)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown(server))
            loop.close()

    async def _shutdown(self, server: asyncio.Server) -> None:
        server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()
        await asyncio.sleep(0.01)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                step = self.script.popleft() if self.script else self.default
                if step.hang:
                    await asyncio.sleep(3600)
                if step.delay:
                    await asyncio.sleep(step.delay)
                if step.reset:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if step.answer and step.trickle:
                    cuts, gap = step.trickle
                    bounds = [0, *cuts, len(step.answer)]
                    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
                        if n:
                            await asyncio.sleep(gap)
                        writer.write(step.answer[start:end])
                        await writer.drain()
                elif step.answer:
                    writer.write(step.answer)
                    await writer.drain()
                if step.close:
                    writer.close()
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            writer.transport.abort()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            body += line + data
            if size == 0:
                return head + body
    length = 0
    for line in lower.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


class LocalCA:
    """A throw-away certificate authority issuing server certificates (default: 127.0.0.1)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._now = datetime.datetime.now(datetime.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wechat_kf test CA")])
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        ca = (
            self._builder(self._name, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def _builder(
        self, subject: x509.Name, key: ec.EllipticCurvePublicKey
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(days=1))
            .not_valid_after(self._now + datetime.timedelta(days=1))
        )

    def server_context(self, host: str = "127.0.0.1") -> ssl.SSLContext:
        """A server context with a certificate for ``host`` (an IP address or a DNS name)."""
        key = ec.generate_private_key(ec.SECP256R1())
        try:
            name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            name = x509.DNSName(host)
        cert = (
            self._builder(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]), key.public_key()
            )
            .add_extension(x509.SubjectAlternativeName([name]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        path = self._directory / f"server-{host}.pem"
        path.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(path)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))
