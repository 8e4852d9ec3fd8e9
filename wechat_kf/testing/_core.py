"""The fake's building blocks: requests it records, replies, faults, clock, and the route table."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from wechat_kf._redaction import redact

if TYPE_CHECKING:
    from wechat_kf.testing._fake import FakeWeChat

__all__ = [
    "AnswerBuilder",
    "FakeClock",
    "FakeReply",
    "Fault",
    "RecordedRequest",
    "WeChatFail",
    "route",
]


class FakeClock:
    """The fake server's clock: real time plus an offset you control with :meth:`advance`.

    Thread-safe. ``FakeWeChat.clock`` drives token expiry, service windows and invite expiry.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> float:
        """The fake's current unix time in seconds."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's time forward (or back, with a negative number)."""
        with self._lock:
            self._offset += seconds

    def __repr__(self) -> str:
        return f"FakeClock(offset={self._offset:g})"


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request the fake received, exactly as it came over the wire."""

    method: str
    path: str
    raw_query: str
    query: Mapping[str, str]
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes
    time: float

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    @property
    def access_token(self) -> str | None:
        """The ``access_token`` query parameter, if any."""
        return self.query.get("access_token")

    def __repr__(self) -> str:
        return f"RecordedRequest({self.method} {self.path}?{redact(self.raw_query)})"


@attrs.frozen(kw_only=True)
class FakeReply:
    """What the fake answers: HTTP status, headers, body, and how to deliver it."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json; encoding=utf-8"),)
    delay: float = 0.0
    reset: bool = False
    connect_error: bool = False
    #: Bytes written to the connection as they are, instead of a rendered answer (status line,
    #: headers and body: any framing, malformed included); the connection is closed after them.
    raw: bytes | None = None
    #: Send the head and half the body, then drop the connection (a download cut short).
    truncate: bool = False


#: Builds an injected answer from the request it answers (e.g. one that echoes the request).
AnswerBuilder = Callable[[RecordedRequest], bytes]


@attrs.define(kw_only=True)
class Fault:
    """A scripted misbehaviour for the next ``times`` requests to a path (see ``inject``)."""

    times: int = 1
    errcode: int | None = None
    errmsg: str | None = None
    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    reset: bool = False
    malformed: bytes | AnswerBuilder | None = None
    connect_error: bool = False
    raw: bytes | AnswerBuilder | None = None
    headers: tuple[tuple[str, str], ...] = ()
    truncate: bool = False
    processed: bool = False


class WeChatFail(Exception):
    """Raised by a handler to answer ``{"errcode": errcode, "errmsg": errmsg}``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(errcode, errmsg)
        self.errcode = errcode
        self.errmsg = errmsg


#: A route's handler: the JSON payload to answer, or a whole :class:`FakeReply` (a file).
Handler = Callable[["FakeWeChat", RecordedRequest], "dict[str, Any] | FakeReply"]


@attrs.frozen
class Route:
    """A path the fake serves: its HTTP method, whether it needs a token, its handler."""

    method: str
    path: str
    handler: Handler
    authenticated: bool = True
    json_body: bool = True


#: Every path the fake serves, filled by the ``@route`` decorators of the handler modules.
ROUTES: Final[dict[str, Route]] = {}


H = TypeVar("H", bound=Handler)


def route(
    method: str, path: str, *, authenticated: bool = True, json_body: bool = True
) -> Callable[[H], H]:
    """Register a handler for ``method path``."""

    def register(handler: H) -> H:
        ROUTES[path] = Route(method, path, handler, authenticated, json_body)
        return handler

    return register


_ESCAPE: Final = re.compile(rb"\\u[0-9a-fA-F]{4}")


def has_unicode_escapes(body: bytes) -> bool:
    """Whether a JSON body holds ``\\uXXXX`` escapes (WeChat answers 40033)."""
    return _ESCAPE.search(body) is not None


def new_rid() -> str:
    """A request id in WeChat's format."""
    return uuid.uuid4().hex[:24]


def answer(payload: Mapping[str, Any]) -> bytes:
    """Encode a payload the way WeChat does: raw UTF-8 JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def error_body(errcode: int, errmsg: str) -> bytes:
    """``{"errcode": N, "errmsg": "... rid: x"}``."""
    return answer({"errcode": errcode, "errmsg": f"{errmsg} rid: {new_rid()}"})
