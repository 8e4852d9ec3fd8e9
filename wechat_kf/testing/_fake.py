"""``FakeWeChat``: a stateful fake of the WeChat API, for the SDK's tests and yours."""

from __future__ import annotations

import collections
import json
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import attrs

from wechat_kf.testing._core import (
    ROUTES,
    AnswerBuilder,
    FakeClock,
    FakeReply,
    Fault,
    RecordedRequest,
    WeChatFail,
    answer,
    error_body,
    has_unicode_escapes,
)
from wechat_kf.testing._customer_service import CustomerService
from wechat_kf.testing._media import MediaLibrary

if TYPE_CHECKING:
    import httpx

    from wechat_kf._client import AsyncWeChat
    from wechat_kf.testing._server import FakeServer
    from wechat_kf.testing._transport import FakeTransport

__all__ = ["FakeWeChat", "IssuedToken"]

#: The classic endpoint keeps the previous token valid this long after issuing a new one.
CLASSIC_OVERLAP: Final = 300.0
#: The stable endpoint hands out a new token this long before the current one expires.
STABLE_ROTATE_EARLY: Final = 300.0
_TEXT_PLAIN: Final = (("Content-Type", "text/plain"),)
_TOKEN_PATHS: Final = ("/cgi-bin/token", "/cgi-bin/stable_token")


@attrs.define
class IssuedToken:
    """A token the fake issued: which endpoint, and until when WeChat accepts it."""

    value: str
    kind: str
    expires_at: float


class FakeWeChat(CustomerService, MediaLibrary):
    """A stateful, in-memory WeChat API for tests.

    Real semantics where the SDK depends on them: tokens expire, a classic fetch invalidates the
    previous token after a 5 minute overlap, the stable endpoint returns the same token while it
    is valid, unknown paths answer 40066, wrong methods 43002, bodies with ``\\uXXXX`` 40033.

    Every customer-service endpoint applies WeChat's rules to in-memory state: agent accounts
    and invitations, sessions and the waiting queue, chat records, and each user's response
    window; temporary media expire after 3 days and a send naming an unknown or expired
    media_id answers 40007 (:class:`MediaLibrary`: ``fake.add_media(...)``, ``fake.uploads``).
    Play the other side with the helpers (see :class:`CustomerService`)::

        fake.add_agent("alice@gh_test", online=True)
        fake.user_says("o_user1", "hello")      # opens the 48 h window: 5 sends
        fake.clock.advance(49 * 3600)           # ... closed again: a send answers 45015
        assert fake.sent_to("o_user1") == []

    Use it in-process (``fake.client()`` / ``fake.transport()``, no sockets) or on a real
    loopback port (``with fake.serve() as server: server.base_url``). Script failures with
    :meth:`inject`; assert on :attr:`requests`. Thread-safe: the loopback server runs in its
    own thread.
    """

    def __init__(
        self,
        *,
        appid: str = "wx0123456789abcdef",
        secret: str = "fake-app-secret",
        expires_in: int = 7200,
        clock: FakeClock | None = None,
        log_limit: int | None = 100_000,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.expires_in = expires_in
        self.clock: FakeClock = clock or FakeClock()
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=log_limit)
        self.tokens: dict[str, IssuedToken] = {}
        self.force_refreshes: list[float] = []
        self.lock: threading.RLock = threading.RLock()
        self._faults: dict[str, collections.deque[Fault]] = {}
        self._classic_current: IssuedToken | None = None
        self._stable_current: IssuedToken | None = None
        self._init_state()

    def _init_state(self) -> None:
        """The API areas' state: agents, sessions, the queue, users, records, media."""
        self._init_customer_service()
        self._init_media()

    def __repr__(self) -> str:
        return f"FakeWeChat(appid={self.appid!r}, requests={len(self.requests)})"

    # ------------------------------------------------------------------ assertions

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests to ``path``, oldest first."""
        with self.lock:
            return [r for r in self.requests if r.path == path]

    @property
    def token_requests(self) -> list[RecordedRequest]:
        """Requests to either token endpoint."""
        with self.lock:
            return [r for r in self.requests if r.path in _TOKEN_PATHS]

    # ------------------------------------------------------------------ control

    def inject(
        self,
        path: str,
        *,
        times: int = 1,
        errcode: int | None = None,
        errmsg: str | None = None,
        status: int | None = None,
        retry_after: str | None = None,
        delay: float = 0.0,
        reset: bool = False,
        malformed: bytes | str | AnswerBuilder | None = None,
        connect_error: bool = False,
        raw: bytes | str | AnswerBuilder | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        truncate: bool = False,
        processed: bool | None = None,
    ) -> None:
        """Script the next ``times`` answers for ``path``.

        Faults that change the answer (pick one): ``errcode``, ``status``, ``reset``,
        ``malformed``, ``connect_error``, ``raw``. ``delay``, ``headers`` and ``truncate``
        combine with any of them, or alone alter the real answer. For example::

            fake.inject(SEND, raw=b"HTTP/1.1 200 OK\\r\\nContent-Length: abc\\r\\n\\r\\n{}")
            fake.inject(TOKEN, headers={"Set-Cookie": "sid=caf\\xe9"})  # the real answer + a header
            fake.inject(TOKEN, malformed=b'{"access_token":"a\\u0000b","expires_in":7200}')
            fake.inject(SEND, malformed=lambda request: b"<pre>" + request.body + b"</pre>")

        Args:
            errcode: answer ``{"errcode": errcode, "errmsg": errmsg}`` instead of handling.
            status: answer this HTTP status (with ``Retry-After: retry_after`` if given).
            delay: answer this many seconds late (a client read timeout fires meanwhile).
            reset: drop the connection instead of answering.
            malformed: answer these bytes with HTTP 200 (a ``str`` is sent as UTF-8). ``malformed``
                and ``raw`` also take a callable that builds the bytes from the
                :class:`RecordedRequest` (a proxy that echoes the request, say).
            connect_error: in-process only: fail as if the connection could not be made.
            raw: answer exactly these bytes (status line, headers, body: any framing, however
                malformed) and close the connection; a ``str`` is sent as Latin-1, HTTP's
                header encoding. In-process, the bytes are parsed as an HTTP/1.1 client would
                (with h11): malformed framing raises ``httpx.RemoteProtocolError``, as httpx's
                own transport does.
            headers: extra answer headers, in order (names may repeat, e.g. ``Set-Cookie``).
                Values travel as Latin-1, so ``"caf\\xe9"`` arrives as the byte ``0xE9``.
            truncate: send the answer's head and only half its body, then drop the connection
                (a download cut short: in-process too, the body fails mid-read).
            processed: whether the request takes effect before the fault applies. By default
                the worst case for a client: a delayed, reset, raw or HTTP-error answer comes
                after the request took effect (a timed-out send still reaches the user), while
                an injected errcode, malformed body or connect error means it did not; extra
                ``headers`` alone go with the real answer.
        """
        changes_answer = (
            errcode is not None
            or status is not None
            or reset
            or malformed is not None
            or connect_error
            or raw is not None
        )
        if processed is None:
            processed = (
                delay > 0 or reset or status is not None or raw is not None or not changes_answer
            )
        if headers is None:
            extra_headers: tuple[tuple[str, str], ...] = ()
        elif isinstance(headers, Mapping):
            extra_headers = tuple(headers.items())
        else:
            extra_headers = tuple(headers)
        fault = Fault(
            times=times,
            errcode=errcode,
            errmsg=errmsg,
            status=status,
            retry_after=retry_after,
            delay=delay,
            reset=reset,
            malformed=malformed.encode() if isinstance(malformed, str) else malformed,
            connect_error=connect_error,
            raw=raw.encode("latin-1") if isinstance(raw, str) else raw,
            headers=extra_headers,
            truncate=truncate,
            processed=processed,
        )
        with self.lock:
            self._faults.setdefault(path, collections.deque()).append(fault)

    def clear_faults(self) -> None:
        """Forget every scripted fault."""
        with self.lock:
            self._faults.clear()

    def invalidate_tokens(self) -> None:
        """Make every issued token invalid now (as if the secret was reset)."""
        with self.lock:
            self.tokens.clear()
            self._classic_current = self._stable_current = None

    def issue_token(self, kind: str = "stable") -> str:
        """Issue a valid token directly (for tests that seed a token store)."""
        with self.lock:
            return self._issue(kind).value

    # ------------------------------------------------------------------ clients

    def transport(self) -> FakeTransport:
        """An httpx transport that answers in-process, with no sockets."""
        from wechat_kf.testing._transport import FakeTransport

        return FakeTransport(self)

    def http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` on the in-process transport."""
        import httpx

        return httpx.AsyncClient(transport=self.transport(), **kwargs)

    def client(self, **kwargs: Any) -> AsyncWeChat:
        """An :class:`AsyncWeChat` for this fake's appid, in-process. ``kwargs`` go to it.

        The HTTP client is owned by the returned facade: ``async with`` closes it. Its
        service-window ledger reads the fake's clock (``window_clock``), so that moving
        :attr:`clock` moves both sides.
        """
        from wechat_kf._client import AsyncWeChat

        kwargs.setdefault("base_url", "https://api.weixin.qq.com")
        kwargs.setdefault("window_clock", self.clock.now)
        wx = AsyncWeChat(self.appid, self.secret, http_client=self.http_client(), **kwargs)
        wx._owns_http = True
        return wx

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[FakeServer]:
        """Serve this fake on a real loopback port in a background thread."""
        from wechat_kf.testing._server import FakeServer

        server = FakeServer(self, host=host, port=port)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    # ------------------------------------------------------------------ dispatch

    def handle(
        self, method: str, path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> FakeReply:
        """Answer one HTTP request (the transport and the loopback server both call this)."""
        request = RecordedRequest(
            method=method,
            path=path,
            raw_query=raw_query,
            query=dict(parse_qsl(raw_query, keep_blank_values=True)),
            headers=headers,
            body=body,
            time=self.clock.now(),
        )
        with self.lock:
            self.requests.append(request)
            fault = self._next_fault(path)
            reply = self._dispatch(request) if fault is None or fault.processed else None
            if fault is None:
                assert reply is not None
                return reply
            return self._apply(fault, reply, request)

    def _next_fault(self, path: str) -> Fault | None:
        queue = self._faults.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        return fault

    def _apply(self, fault: Fault, reply: FakeReply | None, request: RecordedRequest) -> FakeReply:
        """The reply ``fault`` makes; a pure delay delivers the real ``reply`` (if any) late."""
        if fault.connect_error:
            return FakeReply(connect_error=True)
        if fault.reset:
            return FakeReply(reset=True, delay=fault.delay)
        if fault.raw is not None:
            raw = fault.raw(request) if callable(fault.raw) else fault.raw
            return FakeReply(raw=raw, delay=fault.delay)
        made = self._answer_for(fault, reply, request)
        return attrs.evolve(
            made, headers=made.headers + fault.headers, delay=fault.delay, truncate=fault.truncate
        )

    def _answer_for(
        self, fault: Fault, reply: FakeReply | None, request: RecordedRequest
    ) -> FakeReply:
        if fault.status is not None:
            headers: tuple[tuple[str, str], ...] = (("Content-Type", "text/html"),)
            if fault.retry_after is not None:
                headers += (("Retry-After", fault.retry_after),)
            body = f"<html><body>{fault.status}</body></html>".encode()
            return FakeReply(status=fault.status, body=body, headers=headers)
        if fault.malformed is not None:  # WeChat labels some JSON answers text/plain, too
            body = fault.malformed(request) if callable(fault.malformed) else fault.malformed
            return FakeReply(body=body, headers=_TEXT_PLAIN)
        if fault.errcode is not None:
            errmsg = fault.errmsg if fault.errmsg is not None else f"injected {fault.errcode}"
            return FakeReply(body=error_body(fault.errcode, errmsg))
        if reply is not None:
            return reply
        return FakeReply(body=answer({"errcode": 0, "errmsg": "ok"}))

    def _dispatch(self, request: RecordedRequest) -> FakeReply:
        try:
            result = self._route(request)
        except WeChatFail as fail:
            return FakeReply(body=error_body(fail.errcode, fail.errmsg))
        return result if isinstance(result, FakeReply) else FakeReply(body=answer(result))

    def _route(self, request: RecordedRequest) -> dict[str, Any] | FakeReply:
        route = ROUTES.get(request.path)
        if route is None:
            raise WeChatFail(40066, "invalid url")
        if request.method != route.method:
            raise WeChatFail(43002, f"require {route.method} method")
        if route.authenticated:
            self.check_token(request.access_token)
        if "kf_account=" in request.raw_query and "%40" in request.raw_query:
            # WeChat reads kf_account with its '@' as is: an escaped one names no account.
            raise WeChatFail(65401, "invalid kf_account (the @ must not be percent-escaped)")
        if route.method == "POST" and route.json_body:
            if not request.body:
                raise WeChatFail(44002, "empty post data")
            if has_unicode_escapes(request.body):
                raise WeChatFail(
                    40033, "invalid charset. please check your request, if include \\uxxxx"
                )
            try:
                body = json.loads(request.body)
            except ValueError:
                raise WeChatFail(47001, "data format error") from None
            if not isinstance(body, dict):
                raise WeChatFail(47001, "data format error")
        return route.handler(self, request)

    # ------------------------------------------------------------------ tokens

    def check_token(self, value: str | None) -> None:
        """Raise the errcode WeChat gives for a missing, unknown or expired token."""
        if not value:
            raise WeChatFail(41001, "access_token missing")
        token = self.tokens.get(value)
        if token is None:
            raise WeChatFail(40001, "invalid credential, access_token is invalid or not latest")
        if token.expires_at <= self.clock.now():
            raise WeChatFail(42001, "access_token expired")

    def _issue(self, kind: str) -> IssuedToken:
        now = self.clock.now()
        token = IssuedToken(secrets.token_urlsafe(96)[:128], kind, now + self.expires_in)
        self.tokens[token.value] = token
        if kind == "classic":
            previous = self._classic_current
            if previous is not None:
                previous.expires_at = min(previous.expires_at, now + CLASSIC_OVERLAP)
            self._classic_current = token
        else:
            self._stable_current = token
        return token

    def _expire_stale(self) -> None:
        now = self.clock.now()
        for value in [v for v, t in self.tokens.items() if t.expires_at <= now]:
            del self.tokens[value]

    def fetch_classic(self, appid: str, secret: str) -> dict[str, Any]:
        """``GET /cgi-bin/token``: always a new token; the previous one ends after the overlap."""
        self._check_credentials(appid, secret, wrong_secret=40001)
        self._expire_stale()
        token = self._issue("classic")
        return {"access_token": token.value, "expires_in": self.expires_in}

    def fetch_stable(self, appid: str, secret: str, force_refresh: bool) -> dict[str, Any]:
        """``POST /cgi-bin/stable_token``: the same token while valid; force_refresh rotates."""
        self._check_credentials(appid, secret, wrong_secret=40125)
        now = self.clock.now()
        self._expire_stale()
        current = self._stable_current
        if force_refresh:
            recent = [t for t in self.force_refreshes if t > now - 86400]
            if len(recent) >= 20:
                raise WeChatFail(45009, "reach max api daily quota limit")
            if recent and now - recent[-1] < 30:
                raise WeChatFail(45011, "api minute-quota reach limit, force_refresh too often")
            self.force_refreshes.append(now)
            if current is not None:
                self.tokens.pop(current.value, None)
            current = None
        if current is None or current.expires_at - now <= STABLE_ROTATE_EARLY:
            current = self._issue("stable")
        return {"access_token": current.value, "expires_in": round(current.expires_at - now)}

    def _check_credentials(self, appid: str | None, secret: str | None, wrong_secret: int) -> None:
        if appid != self.appid:
            raise WeChatFail(40013, "invalid appid")
        if secret != self.secret:
            raise WeChatFail(wrong_secret, "invalid appsecret")
