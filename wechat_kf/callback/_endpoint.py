"""``CallbackEndpoint``: one HTTP exchange with WeChat, for any web framework.

The framework integrations (:mod:`wechat_kf.callback.starlette`,
:mod:`wechat_kf.callback.aiohttp`) only translate their request into ``(method, query, body)``
and the :class:`HTTPAnswer` back into their response; everything else is here, once:

* ``GET`` is WeChat's URL check: answer ``echostr``;
* ``POST`` is a push: read the body (capped), parse it, claim it in the duplicate store, call
  your ``on_message``, answer its reply (``None`` means ``success``), mark it done;
* with ``windows`` (``wx.windows``), a new push that opens a service window (a user message, a
  qualifying event) is recorded in the client's window ledger before ``on_message`` runs;
* a retry of a push already handled answers ``success``; a retry of a push still being handled
  (``on_message`` took longer than WeChat's 5 s) answers 503, so that WeChat tries again later
  and the push is neither acknowledged before it succeeded nor handled twice at once;
* a refused request answers 403 (signature, plaintext push in safe mode, timestamp, appid),
  413 (too large) or 400, and is logged as a warning on the ``wechat_kf.callback`` logger.

An exception from ``on_message`` propagates to the framework (a 500 for WeChat, which then
retries) after the push is released in the duplicate store, so that the retry is processed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from wechat_kf._redaction import get_logger
from wechat_kf.callback._dedupe import Deduplicator
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

    If marking done fails, the claim lapses after ``in_progress_ttl``; if releasing fails,
    retries answer 503 until then. Either way WeChat's answer stays the right one.
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

    ``on_message`` gets every new push and returns the passive reply. With a ``deduplicator``,
    a retry of a handled push answers ``success`` and a retry of a push still being handled
    answers 503 (WeChat retries later); a push is marked handled only once ``on_message`` and
    the reply succeeded. With ``windows`` (your client's ``wx.windows``), every new push that
    opens a service window is recorded in its ledger first (a failure there is logged, never
    refused), so that ``send_many(..., skip_unreachable=True)`` and ``wx.windows`` know it. Use
    :meth:`answer` from any web framework.
    """

    def __init__(
        self,
        handler: CallbackHandler,
        on_message: OnMessage,
        *,
        deduplicator: Deduplicator | None = None,
        windows: WindowsAPI | None = None,
    ) -> None:
        self.handler = handler
        self.on_message = on_message
        self.deduplicator = deduplicator
        self.windows = windows

    def __repr__(self) -> str:
        return f"{type(self).__name__}(handler={self.handler!r})"

    async def answer(
        self, method: str, query: Mapping[str, str], body: bytes | AsyncIterable[bytes]
    ) -> HTTPAnswer:
        """Handle one request: ``body`` is its bytes, or its chunks (read up to the cap)."""
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
        dedupe = self.deduplicator
        if dedupe is not None:
            state = await dedupe.claim(incoming)
            if state == "done":
                logger.debug("answered a retried push with success: %s", type(incoming).__name__)
                return _text(200, SUCCESS)
            if state:  # "in_progress"
                logger.warning(
                    "a retry came while its %s is still being handled (on_message takes longer "
                    "than WeChat's 5 s): answered 503, WeChat tries again",
                    type(incoming).__name__,
                )
                return _text(503, b"busy: retry later", **{"Retry-After": "5"})
        if self.windows is not None:
            await _observe(self.windows, incoming)
        try:
            reply = await self.on_message(incoming)
            payload = self.handler.reply(incoming, reply)
        except BaseException:
            if dedupe is not None:
                await _quietly("release the push", dedupe.forget(incoming))
            raise
        if dedupe is not None:
            await _quietly("mark the push done", dedupe.mark_done(incoming))
        if payload == SUCCESS:
            return _text(200, payload)
        return HTTPAnswer(status=200, body=payload, headers={"Content-Type": _XML})
