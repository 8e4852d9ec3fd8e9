"""``CallbackEndpoint``: one HTTP exchange with WeChat, for any web framework.

The framework integrations (:mod:`wechat_kf.callback.starlette`,
:mod:`wechat_kf.callback.aiohttp`) only translate their request into ``(method, query, body)``
and the :class:`HTTPAnswer` back into their response; everything else is here, once. A request
goes through these steps (:meth:`CallbackEndpoint.answer`):

1. ``GET`` is WeChat's URL check: answer ``echostr``. Other methods but ``POST``: 405;
2. read the body (capped) and parse it: verified, decrypted, typed. A refusal answers 403
   (signature, plaintext push in safe mode, stale timestamp, appid), 413 (too large) or 400,
   logged as a warning on the ``wechat_kf.callback`` logger;
3. claim the push in the duplicate store (:meth:`CallbackEndpoint.handle`, the one place the
   dedupe states change). A retry of a handled push gets the exact body its first try got; a
   retry of a push still being handled waits for that try (up to ``retry_wait``, 4 s from
   the retry's arrival: WeChat waits 5 s) and answers what it answered; if that try is still
   running then, the retry answers 503 and WeChat tries again (4 tries in all, 5 s apart; once
   every one went unanswered WeChat tells the user the account cannot serve them, and a reply
   that comes later is lost: answer within 4 s, or send the answer later with ``wx.message``);
4. with ``windows`` (your client's ``wx.windows``), record a push that opens a service window
   (a user message, a qualifying event) in the client's window ledger; call ``on_message``
   and build the reply's body (``None`` means ``success``);
5. store the body with the push (retries get it), answer it.

An exception from ``on_message`` propagates to the framework (a 500 for WeChat, which then
retries) after the push is released in the duplicate store, so that the retry is processed (a
retry waiting for it processes it at once).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from wechat_kf._errors import ValidationError
from wechat_kf._redaction import get_logger
from wechat_kf.callback._dedupe import Deduplicator, DuplicateEntry, DuplicateStore
from wechat_kf.callback._defaults import RETRY_WAIT, WECHAT_ANSWER_TIMEOUT
from wechat_kf.callback._errors import (
    AppIdMismatchError,
    BodyTooLargeError,
    CallbackError,
    SignatureError,
    StaleTimestampError,
)
from wechat_kf.callback._handler import CallbackHandler
from wechat_kf.callback._messages import Incoming
from wechat_kf.callback._replies import SUCCESS, Reply

if TYPE_CHECKING:
    from wechat_kf.windows import WindowsAPI

__all__ = ["CallbackEndpoint", "HTTPAnswer", "OnMessage"]

#: Your code: receives each new push, returns the passive reply (``None``: ``success``).
OnMessage: TypeAlias = Callable[[Incoming], Awaitable[Reply | None]]

logger: Final = get_logger("wechat_kf.callback")

_TEXT: Final = "text/plain; charset=utf-8"
_XML: Final = "application/xml; charset=utf-8"


@attrs.frozen(kw_only=True)
class HTTPAnswer:
    """A framework-neutral HTTP response: status, body and headers (``Content-Type`` set)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = attrs.field(factory=lambda: {"Content-Type": _TEXT}, hash=False)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header."""
        return self.headers["Content-Type"]


def _text(status: int, body: bytes, **extra: str) -> HTTPAnswer:
    return HTTPAnswer(status=status, body=body, headers={"Content-Type": _TEXT, **extra})


#: The answer to most pushes; immutable, so shared.
_SUCCESS_ANSWER: Final = HTTPAnswer(
    status=200, body=SUCCESS, headers=MappingProxyType({"Content-Type": _TEXT})
)


def _push_answer(body: bytes) -> HTTPAnswer:
    """The answer carrying a push's reply body: the same for its first try and every retry."""
    if body == SUCCESS:
        return _SUCCESS_ANSWER
    return HTTPAnswer(status=200, body=body, headers={"Content-Type": _XML})


def _refusal(exc: CallbackError) -> HTTPAnswer:
    if isinstance(exc, (SignatureError, StaleTimestampError, AppIdMismatchError)):
        return _text(403, b"forbidden")
    if isinstance(exc, BodyTooLargeError):
        return _text(413, b"payload too large")
    return _text(400, b"bad request")


async def read_capped(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """Join ``chunks``; raise :class:`BodyTooLargeError` as soon as they exceed ``limit``."""
    buffer = bytearray()
    try:
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) > limit:
                raise BodyTooLargeError(len(buffer), limit)
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()
    return bytes(buffer)


async def _quietly(what: str, step: Awaitable[None]) -> None:
    """Run a duplicate-store step whose failure must not replace the answer or the exception.

    If marking done fails, the claim lapses after ``in_progress_ttl`` (retries meanwhile answer
    503); if releasing fails, likewise. Either way WeChat's answer stays the right one.
    """
    try:
        await step
    except Exception as exc:
        logger.warning("duplicate store: could not %s: %s: %s", what, type(exc).__name__, exc)


async def _observe(windows: WindowsAPI, incoming: Incoming) -> None:
    """Record the push in the window ledger; a failure is logged and the push handled anyway."""
    try:
        await windows.observe(incoming)
    except Exception as exc:
        logger.warning(
            "window ledger: could not record a %s push: %s: %s",
            type(incoming).__name__,
            type(exc).__name__,
            exc,
        )


class CallbackEndpoint:
    """Answer WeChat's HTTP requests to your server URL, framework-neutrally.

    ``on_message`` gets every new push once and returns the passive reply. Every push is
    deduplicated: ``deduplicator`` is a :class:`Deduplicator`, or just the store for one
    (``RedisDuplicateStore(client)`` to share it between worker processes; the default is an
    in-memory store, enough for a single process). A retry of a handled push is answered with
    the body its first try got; a retry of a push still being handled waits up to
    ``retry_wait`` seconds from its arrival (4 s; at most 5 s, WeChat's patience) and answers
    what the first try answers, or 503 if it is still running (WeChat tries again). A push is
    marked handled only once ``on_message`` and the reply succeeded. With ``windows`` (your
    client's ``wx.windows``), each new push that opens a service window is recorded in its
    ledger before ``on_message`` runs (a failure there is logged, the push handled anyway), so
    that ``wx.windows`` and ``send_many(..., skip_unreachable=True)`` know it. Use
    :meth:`answer` from any web framework.
    """

    def __init__(
        self,
        handler: CallbackHandler,
        on_message: OnMessage,
        *,
        deduplicator: Deduplicator | DuplicateStore | None = None,
        retry_wait: float = RETRY_WAIT,
        windows: WindowsAPI | None = None,
    ) -> None:
        if isinstance(retry_wait, bool) or not (
            isinstance(retry_wait, (int, float)) and 0 <= retry_wait < WECHAT_ANSWER_TIMEOUT
        ):
            raise ValidationError(
                "retry_wait",
                f"must be seconds from 0 to below {WECHAT_ANSWER_TIMEOUT:g} (WeChat's wait)",
                retry_wait,
            )
        #: Verifies, decrypts and parses each request; writes the replies.
        self.handler: CallbackHandler = handler
        #: Your code, called once per push.
        self.on_message: OnMessage = on_message
        if not isinstance(deduplicator, Deduplicator):
            deduplicator = Deduplicator(deduplicator)
        #: Tells new pushes from retries and keeps their replies.
        self.deduplicator: Deduplicator = deduplicator
        #: Seconds (from its arrival) a retry waits for the try still handling its push.
        self.retry_wait: float = float(retry_wait)
        #: The client's service-window ledger the new pushes are recorded in, if any.
        self.windows: WindowsAPI | None = windows

    def __repr__(self) -> str:
        return f"{type(self).__name__}(handler={self.handler!r})"

    async def answer(
        self, method: str, query: Mapping[str, str], body: bytes | AsyncIterable[bytes]
    ) -> HTTPAnswer:
        """Handle one request: ``body`` is its bytes, or its chunks (read up to the cap)."""
        arrived = time.monotonic()
        method = method.upper()
        try:
            if method == "GET":
                return _text(200, self.handler.verify_url(query).encode("utf-8"))
            if method != "POST":
                return _text(405, b"method not allowed", Allow="GET, POST")
            if not isinstance(body, bytes):
                body = await read_capped(body, self.handler.max_body_size)
            incoming = self.handler.parse(query, body)
        except CallbackError as exc:
            logger.warning("refused a callback request: %s: %s", type(exc).__name__, exc)
            return _refusal(exc)
        return await self.handle(incoming, wait=self.retry_wait - (time.monotonic() - arrived))

    async def handle(self, incoming: Incoming, *, wait: float | None = None) -> HTTPAnswer:
        """Answer a verified push: the one place its duplicate-detection state changes.

        New: claimed (in progress), ``on_message`` runs, the reply's body is stored with it
        (done) and answered; if ``on_message`` or the reply fails, the push is released and
        the exception propagates. A retry: answered with the stored body, after waiting up to
        ``wait`` seconds (default ``retry_wait``) for a try still handling it, or 503.
        """
        dedupe = self.deduplicator
        entry = await dedupe.claim(incoming, wait=self.retry_wait if wait is None else wait)
        if entry is not None:
            return self._retried(incoming, entry)
        if self.windows is not None:
            await _observe(self.windows, incoming)
        try:
            reply = await self.on_message(incoming)
            body = self.handler.reply(incoming, reply)
        except BaseException:
            await _quietly("release the push", dedupe.forget(incoming))
            raise
        await _quietly("mark the push done", dedupe.mark_done(incoming, body))
        return _push_answer(body)

    def _retried(self, incoming: Incoming, entry: DuplicateEntry) -> HTTPAnswer:
        if entry.done:
            logger.debug("answered a retried %s as its first try", type(incoming).__name__)
            return _push_answer(entry.reply)
        logger.warning(
            "a retry came while its %s is still being handled and on_message did not finish "
            "within %g s of it (WeChat waits 5 s): answered 503, WeChat tries again",
            type(incoming).__name__,
            self.retry_wait,
        )
        return _text(503, b"busy: retry later", **{"Retry-After": "5"})
