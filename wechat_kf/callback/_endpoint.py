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
4. with ``windows`` (your client's ``wx.windows``; given ``wechat=``, that client's by
   default), record a push that opens a service window (a user message, a qualifying event) in
   the client's window ledger. Then answer it: call ``on_message`` and build the reply's body
   (``None`` means ``success``); or, given ``wechat=``, let the
   :class:`~wechat_kf.callback._delivery.Delivery` answer it: passively if the answer is one
   message ready by ``reply_deadline``, else ``success`` and the answer sent later through
   ``wx.message`` (see :mod:`wechat_kf.callback._delivery`);
5. store the body with the push (retries get it), answer it.

Without ``wechat=``, an exception from ``on_message`` propagates to the framework (a 500 for
WeChat, which then retries) after the push is released in the duplicate store, so that the
retry is processed (a retry waiting for it processes it at once). With it, the exception is
reported to ``on_delivery_failed`` and the push answered ``success``: a retry never runs the
work again.
"""

from __future__ import annotations

import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
)
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from wechat_kf._errors import ValidationError
from wechat_kf._redaction import get_logger
from wechat_kf.callback._clock import Clock, SystemClock
from wechat_kf.callback._dedupe import Deduplicator, DuplicateEntry, DuplicateStore
from wechat_kf.callback._defaults import (
    MAX_TEXT_BYTES,
    REPLY_DEADLINE,
    RETRY_WAIT,
    SHUTDOWN_GRACE,
    WECHAT_ANSWER_TIMEOUT,
)
from wechat_kf.callback._delivery import Answer, AnswerPart, Delivery, OnDeliveryFailed
from wechat_kf.callback._errors import (
    AppIdMismatchError,
    BodyTooLargeError,
    CallbackError,
    SignatureError,
    StaleTimestampError,
)
from wechat_kf.callback._handler import CallbackHandler
from wechat_kf.callback._messages import Incoming
from wechat_kf.callback._replies import SUCCESS, Reply, TextReply

if TYPE_CHECKING:
    from wechat_kf._client import AsyncWeChat

if TYPE_CHECKING:
    from wechat_kf.windows import WindowsAPI

__all__ = ["CallbackEndpoint", "HTTPAnswer", "OnMessage"]

#: Your code: receives each new push and answers it: a reply (``None``: ``success``); with
#: ``wechat=``, also several (a list, or an async iterator for streamed output: an ``async
#: def`` that yields), a ``wechat_kf`` message, or a ``str`` (a text).
OnMessage: TypeAlias = Callable[[Incoming], Awaitable[Answer] | AsyncIterable[AnswerPart | None]]

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


#: The answer while shutting down: WeChat tries again (another worker, or after the restart).
_BUSY: Final = HTTPAnswer(
    status=503,
    body=b"busy: retry later",
    headers=MappingProxyType({"Content-Type": _TEXT, "Retry-After": "5"}),
)


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


async def _passive_only(on_message: OnMessage, incoming: Incoming) -> Reply | None:
    """``on_message``'s answer as a passive reply, for an endpoint without ``wechat=``."""
    call = on_message(incoming)
    if not inspect.isawaitable(call):
        raise ValidationError(
            "on_message",
            "returned a stream: streamed answers are sent through the customer-service API; "
            "give the endpoint wechat=your AsyncWeChat",
        )
    answer = await call
    if answer is None or isinstance(answer, Reply):
        return answer
    if isinstance(answer, str):
        return TextReply(content=answer) if answer else None
    raise ValidationError(
        "reply",
        f"is a {type(answer).__name__}: several replies, streams and wechat_kf messages are "
        "sent through the customer-service API; give the endpoint wechat=your AsyncWeChat",
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

    Answers that take longer than WeChat waits: give ``wechat`` (your ``AsyncWeChat``) and
    ``on_message`` may take as long as it needs. An answer of one message ready within
    ``reply_deadline`` seconds of the push's arrival (4; below WeChat's 5) goes back
    passively; otherwise WeChat gets ``success`` (retries too: the work never runs twice) and
    the answer goes out through ``wx.message.send`` when it is ready, "typing..." showing
    meanwhile (``show_typing``), text split at ``max_text_bytes``, every message marked
    AI-generated with ``ai_generated=True``, within the messages WeChat allows for the push (5
    after a user message) and, as the client's window ledger knows them, for the user. What
    does not reach the user is logged with the openid and passed to ``on_delivery_failed`` (a
    :class:`~wechat_kf.callback.DeliveryFailure`). With ``wechat``, ``windows`` defaults to
    ``wechat.windows``. The answers run in a task group that :meth:`running` opens: enter it
    in your application's lifespan; on exit it gives answers in flight ``shutdown_grace``
    seconds (10), then cuts them off and reports them. ``clock`` (a
    :class:`~wechat_kf.callback.Clock`) is for tests. See :mod:`wechat_kf.callback._delivery`
    for every rule.
    """

    def __init__(
        self,
        handler: CallbackHandler,
        on_message: OnMessage,
        *,
        deduplicator: Deduplicator | DuplicateStore | None = None,
        retry_wait: float = RETRY_WAIT,
        windows: WindowsAPI | None = None,
        wechat: AsyncWeChat | None = None,
        reply_deadline: float = REPLY_DEADLINE,
        show_typing: bool = True,
        ai_generated: bool = False,
        max_text_bytes: int = MAX_TEXT_BYTES,
        on_delivery_failed: OnDeliveryFailed | None = None,
        shutdown_grace: float = SHUTDOWN_GRACE,
        clock: Clock | None = None,
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
        if windows is None and wechat is not None:
            windows = wechat.windows
        #: The client's service-window ledger the new pushes are recorded in, if any.
        self.windows: WindowsAPI | None = windows
        #: The clock a request's arrival, the deadline and the grace period are read on.
        self.clock: Clock = clock if clock is not None else SystemClock()
        #: Answers past the deadline (``None`` without ``wechat``: every answer is passive).
        self.delivery: Delivery | None = None
        if wechat is not None:
            self.delivery = Delivery(
                wechat,
                reply_deadline=reply_deadline,
                show_typing=show_typing,
                ai_generated=ai_generated,
                max_text_bytes=max_text_bytes,
                on_delivery_failed=on_delivery_failed,
                shutdown_grace=shutdown_grace,
                clock=self.clock,
                windows=windows,
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(handler={self.handler!r})"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Keep the task group late answers run in open: enter it in your app's lifespan.

        On exit, answers still in flight get ``shutdown_grace`` seconds, then are cut off and
        reported to ``on_delivery_failed`` (reason ``"shutdown"``). Without ``wechat`` there is
        nothing to run: it does nothing, so one lifespan fits both.
        """
        if self.delivery is None:
            yield
            return
        async with self.delivery.running():
            yield

    async def wait_idle(self) -> None:
        """Return once every late answer is delivered (or reported): for tests and scripts."""
        if self.delivery is not None:
            await self.delivery.wait_idle()

    async def answer(
        self, method: str, query: Mapping[str, str], body: bytes | AsyncIterable[bytes]
    ) -> HTTPAnswer:
        """Handle one request: ``body`` is its bytes, or its chunks (read up to the cap)."""
        arrived = self.clock.now()
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
        wait = self.retry_wait - (self.clock.now() - arrived)
        return await self.handle(incoming, wait=wait, arrived=arrived)

    async def handle(
        self, incoming: Incoming, *, wait: float | None = None, arrived: float | None = None
    ) -> HTTPAnswer:
        """Answer a verified push: the one place its duplicate-detection state changes.

        New: claimed (in progress), answered, its answer's body stored with it (done). Without
        ``wechat``, ``on_message`` runs here; if it or the reply fails, the push is released
        and the exception propagates. With it, :attr:`delivery` answers by the deadline,
        ``arrived`` (on :attr:`clock`, default now) counting. A retry: answered with the
        stored body, after waiting up to ``wait`` seconds (default ``retry_wait``) for a try
        still handling it, or 503.
        """
        delivery = self.delivery
        if delivery is not None and not delivery.accepting:
            delivery.check_running()
            return _BUSY  # shutting down: not claimed, WeChat tries again
        dedupe = self.deduplicator
        entry = await dedupe.claim(incoming, wait=self.retry_wait if wait is None else wait)
        if entry is not None:
            return self._retried(incoming, entry)
        if self.windows is not None:
            await _observe(self.windows, incoming)
        if delivery is None:
            body: bytes | None = await self._answer_passively(incoming)
        else:  # passive by the deadline, or success and the answer sent later
            body = await delivery.answer(
                incoming,
                arrived=self.clock.now() if arrived is None else arrived,
                on_message=self.on_message,
                passive=self.handler.reply,
                settle=self._settle,
            )
        return _BUSY if body is None else _push_answer(body)

    async def _answer_passively(self, incoming: Incoming) -> bytes:
        """``on_message``'s reply as the body, stored with the push; released on failure."""
        dedupe = self.deduplicator
        try:
            reply = await _passive_only(self.on_message, incoming)
            body = self.handler.reply(incoming, reply)
        except BaseException:
            await _quietly("release the push", dedupe.forget(incoming))
            raise
        await _quietly("mark the push done", dedupe.mark_done(incoming, body))
        return body

    async def _settle(self, incoming: Incoming, body: bytes | None) -> None:
        """Store the answer of a push answered by :attr:`delivery` (``None``: release it)."""
        dedupe = self.deduplicator
        if body is None:
            await _quietly("release the push", dedupe.forget(incoming))
        else:
            await _quietly("mark the push done", dedupe.mark_done(incoming, body))

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
        return _BUSY


def endpoint_of(
    handler: CallbackHandler | CallbackEndpoint,
    on_message: OnMessage | None,
    *,
    deduplicator: Deduplicator | DuplicateStore | None,
    retry_wait: float,
) -> CallbackEndpoint:
    """The endpoint a framework integration serves: the one given, or one built from parts."""
    if isinstance(handler, CallbackEndpoint):
        if on_message is not None or deduplicator is not None or retry_wait != RETRY_WAIT:
            raise TypeError(
                "pass a CallbackEndpoint alone (its options are set on it), or a "
                "CallbackHandler with on_message and options"
            )
        return handler
    if on_message is None:
        raise TypeError("on_message is required with a CallbackHandler")
    return CallbackEndpoint(handler, on_message, deduplicator=deduplicator, retry_wait=retry_wait)
