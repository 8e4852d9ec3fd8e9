"""``wx.message``: send customer-service messages (客服消息) and the typing state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from wechat_kf import _defaults, bulk
from wechat_kf import _validation as check
from wechat_kf._errors import InvalidMediaIdError
from wechat_kf._pipeline import Endpoint, Pipeline
from wechat_kf._resource import APIResource
from wechat_kf._retry import RetryMode
from wechat_kf._window_ledger import WindowLedger
from wechat_kf.bulk import (
    MessageFactory,
    RateLimiter,
    Recipients,
    SendControl,
    SendReport,
    SendStream,
)
from wechat_kf.messages import Message, envelope

if TYPE_CHECKING:
    from wechat_kf.media import MediaAPI

__all__ = ["MessageAPI"]

SEND: Final = Endpoint("POST", "/cgi-bin/message/custom/send", RetryMode.WRITE)
#: A send that does not trust -1 to mean "nothing done" (``busy_is_unknown=True``).
SEND_BUSY_UNKNOWN: Final = Endpoint("POST", SEND.path, RetryMode.WRITE_STRICT)
_TYPING: Final = Endpoint("POST", "/cgi-bin/message/custom/typing", RetryMode.WRITE)


class MessageAPI(APIResource):
    """Messages to users inside their service window (5 in 48 h after a user message).

    Every send's answer feeds the client's service-window ledger (``wx.windows``).

    A message holding a local file (``Image(file="shop.jpg")``) is sent by its ``media_id``:
    the file is uploaded once (the media-id cache of ``wx.media``, by content) and the id reused
    while it stays valid. When WeChat refuses that id (40007: the temporary media expired), the
    file is uploaded again, once, and the refused send made once more (it reached no one).
    """

    __slots__ = ("_ledger", "_media")

    def __init__(self, pipeline: Pipeline, ledger: WindowLedger, *, media: MediaAPI) -> None:
        super().__init__(pipeline)
        self._ledger = ledger
        self._media = media

    async def send(
        self,
        openid: str,
        message: Message,
        *,
        kf_account: str | None = None,
        ai_generated: bool = False,
        busy_is_unknown: bool = False,
        skip_unreachable: bool = False,
    ) -> None:
        """Send ``message`` to the user ``openid``.

        ``kf_account`` sends as that agent (its avatar and nickname show). ``ai_generated``
        marks AI-generated content (``aimsgcontext.is_ai_msg = 1``). Outside the user's
        response window WeChat answers :class:`~wechat_kf.ResponseWindowError` (45015), past the
        window's quota :class:`~wechat_kf.ResponseQuotaError` (45047); either corrects the
        service-window ledger (``wx.windows``), and an accepted send spends one message there.

        A send is retried only when it provably never left or WeChat said busy (-1). Retrying
        after -1 rests on an assumption WeChat does not document: that it did nothing with the
        request. ``busy_is_unknown=True`` drops it: a -1 is not retried and raises
        :class:`~wechat_kf.ServerBusyError` with ``may_have_reached_wechat = True``. If no
        access token can be had, a :class:`~wechat_kf.TokenError` says the message was not sent.

        ``skip_unreachable=True`` consults the ledger first and takes one message of the user's
        window in the same atomic step: a user the ledger knows is outside every window or out
        of messages raises :class:`~wechat_kf.UnreachableError` with no request made (a user it
        knows nothing of is sent to as usual), and concurrent sends to one user never spend
        more than the window allows.
        """
        check.openid(openid)
        if kf_account is not None:
            check.kf_account(kf_account)
        endpoint = SEND_BUSY_UNKNOWN if busy_is_unknown else SEND

        async def deliver() -> None:
            if not isinstance(message, Message) or not message.has_local_files:
                body = envelope(openid, message, kf_account=kf_account, ai_generated=ai_generated)
                await self._pipeline.call(endpoint, json=body)
                return
            resolved = await self._media.resolve(message)
            body = envelope(
                openid, resolved.message, kf_account=kf_account, ai_generated=ai_generated
            )
            try:
                await self._pipeline.call(endpoint, json=body)
            except InvalidMediaIdError:
                # The uploaded media expired (or was dropped): refused, so nobody got it.
                # Upload the files again (once, whoever asks) and send once more.
                resolved = await self._media.resolve(message, stale=resolved)
                body = envelope(
                    openid, resolved.message, kf_account=kf_account, ai_generated=ai_generated
                )
                await self._pipeline.call(endpoint, json=body)

        reservation = await self._ledger.reserve(openid) if skip_unreachable else None
        await self._ledger.send(openid, deliver, reservation)

    async def send_many(
        self,
        recipients: Recipients,
        message: Message | MessageFactory,
        *,
        kf_account: str | None = None,
        ai_generated: bool = False,
        max_concurrency: int = _defaults.BULK_MAX_CONCURRENCY,
        rate: float | RateLimiter | None = None,
        control: SendControl | None = None,
        busy_is_unknown: bool = False,
        skip_unreachable: bool = False,
    ) -> SendReport:
        """Send ``message`` to every openid of ``recipients``; one result each, in input order.

        ``recipients`` is any iterable or async iterable of openids; it is read as workers
        become free, never all at once. ``message`` is one message for everyone, or a callable
        ``openid -> message`` (sync or async) for personalised sends. At most
        ``max_concurrency`` requests are in flight (the SDK's own connection pool grows to
        match); ``rate`` caps messages per second (a number, or a :class:`RateLimiter` shared
        by several sends).

        Each :class:`~wechat_kf.SendResult` is ``sent``; ``failed`` with the typed error
        (a refused send, a bad openid, a failing message callable: :class:`MessageBuildError`);
        ``unknown`` when the request may have reached WeChat without an answer saying so (read
        timeout, connection lost, HTTP 5xx); or ``skipped``, not attempted, with the reason. A
        send is retried only when it provably never left or WeChat said busy (-1). Retrying
        after -1 assumes WeChat did nothing with the request (WeChat does not document it):
        with ``busy_is_unknown=True`` a -1 is never retried and the recipient is ``unknown``,
        for sends that must never reach anyone twice.

        ``skip_unreachable=True`` consults the service-window ledger (``wx.windows``) first: a
        recipient it knows is outside their window or out of messages is ``skipped`` with an
        :class:`~wechat_kf.UnreachableError`, without a request; one it knows nothing about is
        sent to as usual. Each message is reserved in the ledger before it is sent, so
        concurrent sends (other processes sharing a :class:`~wechat_kf.RedisWindowStore`
        included) never spend more than a window allows.

        The daily quota (45009), no access token to be had (a :class:`~wechat_kf.TokenError`:
        the token endpoint is down, ...) and the other :data:`~wechat_kf.bulk.STOP_ERRORS` stop
        the run: requests in flight finish, and every recipient not attempted is reported
        ``skipped`` with that error (``report.stopped_by``). ``control.stop()`` stops it the
        same way.
        If the caller is cancelled, no new send starts, requests in flight get a few seconds to
        answer (else they are ``unknown``), and ``control.report`` holds the partial report.

        A message holding a local file (``Image(file="notice.jpg")``) is uploaded once, before
        the first send; if that upload fails, every recipient is ``skipped`` with its error
        (``report.stopped_by``). A send WeChat refuses with 40007 (the upload expired mid-run)
        re-uploads the file once for the whole run and is made once more.
        """
        return await bulk.send_many(
            self._pipeline,
            SEND_BUSY_UNKNOWN if busy_is_unknown else SEND,
            recipients,
            message,
            kf_account=kf_account,
            ai_generated=ai_generated,
            max_concurrency=max_concurrency,
            rate=rate,
            control=control,
            media=self._media,
            ledger=self._ledger,
            skip_unreachable=skip_unreachable,
        )

    def stream_many(
        self,
        recipients: Recipients,
        message: Message | MessageFactory,
        *,
        kf_account: str | None = None,
        ai_generated: bool = False,
        max_concurrency: int = _defaults.BULK_MAX_CONCURRENCY,
        rate: float | RateLimiter | None = None,
        busy_is_unknown: bool = False,
        skip_unreachable: bool = False,
    ) -> SendStream:
        """:meth:`send_many`, streaming each result as it happens, in constant memory.

        For millions of recipients whose results you write to your own storage::

            async with wx.message.stream_many(openids(), notice) as results:
                async for result in results:
                    await db.save(result.openid, result.status, result.errcode)
            print(results.summary.counts)

        Results arrive in completion order (``result.index`` is the input position). Leaving
        the block early stops new sends; the results you did not read (``sent`` ones included)
        are on ``results.unread`` afterwards. ``skip_unreachable`` as for :meth:`send_many`.
        See :class:`~wechat_kf.SendStream`.
        """
        return bulk.stream_many(
            self._pipeline,
            SEND_BUSY_UNKNOWN if busy_is_unknown else SEND,
            recipients,
            message,
            kf_account=kf_account,
            ai_generated=ai_generated,
            max_concurrency=max_concurrency,
            rate=rate,
            media=self._media,
            ledger=self._ledger,
            skip_unreachable=skip_unreachable,
        )

    async def typing(self, openid: str) -> None:
        """Show "typing..." to the user (needs an exchange within 30 s; lasts 15 s)."""
        await self._typing(openid, "Typing")

    async def cancel_typing(self, openid: str) -> None:
        """Stop showing "typing..." to the user."""
        await self._typing(openid, "CancelTyping")

    async def _typing(self, openid: str, command: str) -> None:
        body = {"touser": check.openid(openid), "command": command}
        await self._pipeline.call(_TYPING, json=body)
