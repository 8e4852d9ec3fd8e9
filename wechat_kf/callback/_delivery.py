"""Answers that take longer than WeChat waits: the reply deadline, late delivery, "typing...".

WeChat waits 5 s for the answer to a push, retries 3 times, then tells the user the account
cannot serve them; a model's answer takes 5-60 s. Given ``wechat=`` (an ``AsyncWeChat``),
:class:`~wechat_kf.callback.CallbackEndpoint` hands each new push to a :class:`Delivery`,
which runs ``on_message`` as a job of its own task group (opened and closed by
``endpoint.running()`` in the application's lifespan, never a fire-and-forget task) and:

1. answers passively when the whole answer is one reply, ready within ``reply_deadline``
   (4 s from the push's arrival) and fitting one message;
2. otherwise answers ``success``: at the deadline, or as soon as the answer turns out to be
   several messages (a list, a stream, a text longer than ``max_text_bytes``), since a passive
   reply and a message sent through the API may reach the user in either order. That
   ``success`` is the stored reply of the push: WeChat's retries (and a retry at another
   worker sharing the duplicate store) answer it and never run ``on_message`` again;
3. sends the answer through ``wx.message.send``, in order, as its messages come: a
   :class:`~wechat_kf.callback.TextReply` as a :class:`~wechat_kf.Text`, an
   :class:`~wechat_kf.callback.ImageReply` as an :class:`~wechat_kf.Image`, and so on; text
   split at ``max_text_bytes`` on safe boundaries (:func:`~wechat_kf.callback.split_text`);
   never more than the window allows (:data:`MESSAGE_REPLY_BUDGET` after a user message,
   :data:`EVENT_REPLY_BUDGET` after an event): the last message it allows waits for the end of
   the answer and takes the rest of its text when it fits (joined by a blank line); what still
   does not fit is reported ``over_budget``, never sent to fail with 45047;
4. shows "typing..." while ``on_message`` works past the deadline (``show_typing``): sent at
   the deadline, renewed when WeChat's 15 s run out while the last exchange with the user is
   less than 30 s old (WeChat refuses it later: 45080), shown again between the messages of a
   stream when the next one takes over a second, cancelled when the answer ends without a
   message after it (a message cancels it by itself);
5. reports what did not reach the user to ``on_delivery_failed`` (a :class:`DeliveryFailure`)
   and logs it on ``wechat_kf.callback`` with the openid: ``on_message`` raised; WeChat refused
   a message (45015 outside the window, 45047, 48001, ...: the rest of the answer is not sent);
   a message was lost on the way (it may have arrived; the rest is not sent); the answer needed
   more messages than the window allows; a :class:`~wechat_kf.callback.TransferCustomerService`
   came after the deadline (only a passive reply can transfer: return it fast); the
   application shut down with the answer still running (after ``shutdown_grace``).

``ai_generated=True`` marks every message sent as AI-generated (``aimsgcontext.is_ai_msg``).
WeChat's passive reply has no such mark, so with it every answer goes through the API (a
:class:`~wechat_kf.callback.TransferCustomerService` still goes back passively).
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from wechat_kf._errors import (
    MalformedResponseError,
    TransportError,
    TypingError,
    UnreachableError,
    ValidationError,
    WeChatError,
)
from wechat_kf._redaction import get_logger
from wechat_kf.callback._clock import TIMED_OUT, Clock, SystemClock, within
from wechat_kf.callback._defaults import (
    CUT_OFF_CLEANUP,
    EVENT_REPLY_BUDGET,
    MAX_TEXT_BYTES,
    MESSAGE_REPLY_BUDGET,
    REPLY_DEADLINE,
    SHUTDOWN_GRACE,
    TYPING_AFTER_SEND,
    TYPING_DURATION,
    TYPING_EXCHANGE_WINDOW,
    WECHAT_ANSWER_TIMEOUT,
)
from wechat_kf.callback._messages import Incoming, UserMessage
from wechat_kf.callback._replies import SUCCESS, Reply, Success, TextReply, TransferCustomerService
from wechat_kf.callback._split import split_text
from wechat_kf.messages import Message, Text

if TYPE_CHECKING:
    from wechat_kf._client import AsyncWeChat
    from wechat_kf.windows import WindowsAPI

__all__ = [
    "Answer",
    "AnswerPart",
    "Delivery",
    "DeliveryFailure",
    "FailureReason",
    "OnDeliveryFailed",
]

logger: Final = get_logger("wechat_kf.callback")

#: One message of an answer: a passive reply, a customer-service message, or text.
AnswerPart: TypeAlias = Reply | Message | str
#: What ``on_message`` may return: one part, ``None`` (nothing), or several, as a list or an
#: async iterator (streamed model output: one message per item, a paragraph say).
Answer: TypeAlias = (
    AnswerPart | Iterable[AnswerPart | None] | AsyncIterable[AnswerPart | None] | None
)

#: Why (part of) an answer did not reach the user; see :class:`DeliveryFailure`.
FailureReason: TypeAlias = Literal[
    "handler", "refused", "unknown", "over_budget", "too_late", "shutdown"
]

_DESCRIPTIONS: Final[dict[str, str]] = {
    "handler": "on_message failed",
    "refused": "a message was refused",
    "unknown": "a message was lost on the way (it may have reached the user)",
    "over_budget": "the answer needs more messages than WeChat allows",
    "too_late": "a reply that only a passive answer can carry came after the deadline (lost)",
    "shutdown": "the application shut down while the answer was still running",
}


@attrs.frozen(kw_only=True)
class DeliveryFailure:
    """Part of an answer that did not reach the user, and why.

    ``reason`` is one of:

    * ``"handler"``: ``on_message`` (or its stream) raised ``error``;
    * ``"refused"``: a message could not be sent and surely did not arrive: WeChat refused it
      (``error`` is the :class:`~wechat_kf.APIError`: 45015 outside the window, 45047, 48001,
      45002, ...), or it failed before any request (a :class:`~wechat_kf.ValidationError`, such
      as a link longer than a message);
    * ``"unknown"``: the request of ``maybe_sent`` may have reached WeChat, with no answer
      saying so (``error`` is the transport error): not sent again;
    * ``"over_budget"``: ``unsent`` would exceed the messages WeChat allows for the push;
    * ``"too_late"``: a :class:`~wechat_kf.callback.TransferCustomerService` came after the
      reply deadline (only a passive reply can transfer a user);
    * ``"shutdown"``: the application shut down with the answer still running.

    ``sent`` counts the messages that reached WeChat for this push before (the passive reply
    included), ``unsent`` holds those not sent (after a failure the rest of the answer is not
    sent, to keep it in order). ``openid`` is the user's.
    """

    incoming: Incoming
    reason: FailureReason
    error: BaseException | None = None
    sent: int = 0
    unsent: tuple[Reply | Message, ...] = ()
    maybe_sent: Message | None = None

    @property
    def openid(self) -> str:
        """The user the answer was for."""
        return self.incoming.from_user

    def __str__(self) -> str:
        text = f"answer to {self.openid}: {_DESCRIPTIONS[self.reason]}"
        if self.error is not None:
            text += f": {type(self.error).__name__}: {self.error}"
        return f"{text} ({self.sent} sent, {len(self.unsent)} not sent)"


#: Your code, told about each :class:`DeliveryFailure` (sync or async).
OnDeliveryFailed: TypeAlias = Callable[[DeliveryFailure], Awaitable[None] | None]
#: Turns a push and a passive reply into the response body (``CallbackHandler.reply``).
PassiveBody: TypeAlias = Callable[[Incoming, Reply], bytes]
#: Stores the push's answer in the duplicate store (``None``: release the push).
Settle: TypeAlias = Callable[[Incoming, bytes | None], Awaitable[None]]
OnMessageCall: TypeAlias = Callable[[Incoming], Any]


# --------------------------------------------------------------------------- the handler side


@attrs.frozen
class _Whole:
    """The whole answer was one value (it may go back passively)."""

    value: object


@attrs.frozen
class _Part:
    """One value of an answer of several."""

    value: object


@attrs.frozen
class _Raised:
    """``on_message`` raised."""

    error: Exception


class _End:
    def __repr__(self) -> str:
        return "END"  # pragma: no mutate (a debugging repr)


_END: Final = _End()
_Item: TypeAlias = _Whole | _Part | _Raised


async def _produce(
    on_message: OnMessageCall, incoming: Incoming, send: MemoryObjectSendStream[_Item]
) -> None:
    """Run ``on_message`` and pass what it answers on, value by value (never raises)."""
    async with send:
        try:
            result = on_message(incoming)
            if inspect.isawaitable(result):
                result = await result
            if isinstance(result, AsyncIterable):
                await _produce_stream(result, send)
            elif isinstance(result, (str, bytes, Mapping)) or not isinstance(result, Iterable):
                await send.send(_Whole(result))
            else:
                values = list(result)
                if len(values) == 1:
                    await send.send(_Whole(values[0]))
                else:  # all at once, so that a failure's report holds every value not sent
                    for value in values:
                        send.send_nowait(_Part(value))
        except Exception as exc:
            await send.send(_Raised(exc))


async def _produce_stream(
    stream: AsyncIterable[object], send: MemoryObjectSendStream[_Item]
) -> None:
    try:
        async for value in stream:
            await send.send(_Part(value))
    finally:  # an async generator cut off (the answer stopped) runs its cleanup now
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _buffered(receive: MemoryObjectReceiveStream[_Item]) -> list[Reply | Message]:
    """The answer's values already produced and not taken yet, as messages (for a report)."""
    values: list[Reply | Message] = []
    while True:
        try:
            item = receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream):
            return values
        value = item.value if isinstance(item, (_Whole, _Part)) else None
        if isinstance(value, str) and value:
            values.append(Text(content=value))
        elif isinstance(value, Reply) and not isinstance(value, Success):
            values.append(value.as_message() or value)
        elif isinstance(value, Message):
            values.append(value)


# --------------------------------------------------------------------------- one answer


class _NotSent(Exception):
    """A message that could not go out; the answer stops (``reason``, ``error``)."""

    def __init__(self, reason: FailureReason, error: BaseException | None = None) -> None:
        super().__init__(reason)  # pragma: no mutate (caught inside, never shown)
        self.reason: FailureReason = reason
        self.error = error


def _single(error: Exception) -> Exception:
    """The one exception inside (nested) exception groups of one, else ``error`` itself."""
    inner: tuple[Exception, ...] = getattr(error, "exceptions", ())
    while len(inner) == 1:
        error = inner[0]
        inner = getattr(error, "exceptions", ())
    return error


def _may_have_reached(error: WeChatError) -> bool:
    """Whether a failed send may have reached WeChat (as ``send_many`` reports ``unknown``)."""
    if isinstance(error, TransportError):
        return error.may_have_reached_wechat
    return isinstance(error, MalformedResponseError)


class _Typing:
    """The "typing..." state of one user, as far as one answer knows it."""

    def __init__(self, wechat: AsyncWeChat, openid: str, clock: Clock, since: float) -> None:
        self._wechat = wechat
        self._openid = openid
        self._clock = clock
        #: The last message either way (the push, or one of our sends).
        self.last_exchange = since
        #: When WeChat's "typing..." we asked for ends (``None``: not showing).
        self.showing_until: float | None = None

    async def keep(self, delay: float) -> None:
        """Show "typing..." (after ``delay``) and renew it while WeChat allows; until cancelled."""
        clock = self._clock
        await clock.sleep(delay)  # (at once for 0)
        while clock.now() - self.last_exchange < TYPING_EXCHANGE_WINDOW:
            until = self.showing_until
            if until is None or clock.now() >= until:
                if not await self._command(show=True):
                    return
                until = self.showing_until
            assert until is not None
            await clock.sleep(max(until - clock.now(), 0.0))

    def message_sent(self) -> None:
        """A message reached the user: an exchange, and WeChat ends "typing..." by itself."""
        self.last_exchange = self._clock.now()
        self.showing_until = None

    async def stop(self) -> None:
        """Cancel "typing..." if it is still showing."""
        until = self.showing_until
        if until is not None and self._clock.now() < until:
            await self._command(show=False)  # pragma: no mutate (None is as false)

    async def _command(self, *, show: bool) -> bool:
        """Send ``Typing`` or ``CancelTyping``; whether to go on. Never cut off mid-request, so
        that a "typing..." can never land after the message that follows it."""
        message = self._wechat.message
        try:
            with anyio.CancelScope(shield=True):
                await (message.typing if show else message.cancel_typing)(self._openid)
        except WeChatError as exc:
            if show and isinstance(exc, TypingError) and exc.errcode == 45081:
                self.showing_until = self._clock.now() + TYPING_AFTER_SEND  # still on: later
                return True
            logger.info(
                "typing for %s: %s failed: %s: %s",
                self._openid,
                "Typing" if show else "CancelTyping",
                type(exc).__name__,
                exc,
            )
            self.showing_until = None
            return False
        now = self._clock.now()  # (after a CancelTyping nothing reads showing_until again)
        self.showing_until = now + TYPING_DURATION if show else None  # pragma: no mutate
        return True


def _budget(incoming: Incoming) -> int:
    """Messages the API may send for this push: 5 after a user message, 3 after an event."""
    return MESSAGE_REPLY_BUDGET if isinstance(incoming, UserMessage) else EVENT_REPLY_BUDGET


class _Job:
    """One push being answered: its decision (the passive body), its messages, its typing."""

    def __init__(self, delivery: Delivery, incoming: Incoming, arrived: float) -> None:
        self.incoming = incoming
        self.openid = incoming.from_user
        self.deadline = arrived + delivery.reply_deadline
        self.budget = _budget(incoming)
        #: Set once WeChat's answer is known: ``body`` (``None``: 503, the push released).
        self.decided = anyio.Event()
        self.body: bytes | None = None  # pragma: no mutate (always decided before it is read)
        self.sent = 0
        #: The messages taken from the answer and not sent yet, in order.
        self.queue: deque[Message] = deque()
        #: Whether the answer's values have all been taken.
        self.ended = False  # pragma: no mutate (None is as false)
        #: The message whose request is in flight.
        self.sending: Message | None = None
        #: What ``on_message`` (or its stream) raised.
        self.raised: Exception | None = None
        self.typing = _Typing(delivery.wechat, self.openid, delivery.clock, since=arrived)


class Delivery:
    """Runs slow answers past WeChat's deadline and delivers them through the API.

    Built by :class:`~wechat_kf.callback.CallbackEndpoint` from its ``wechat=`` options (see
    the module documentation for the rules). Its task group is open while :meth:`running` is.
    """

    def __init__(
        self,
        wechat: AsyncWeChat,
        *,
        reply_deadline: float = REPLY_DEADLINE,
        show_typing: bool = True,
        ai_generated: bool = False,
        max_text_bytes: int = MAX_TEXT_BYTES,
        on_delivery_failed: OnDeliveryFailed | None = None,
        shutdown_grace: float = SHUTDOWN_GRACE,
        clock: Clock | None = None,
        windows: WindowsAPI | None = None,
    ) -> None:
        if isinstance(reply_deadline, bool) or not (
            isinstance(reply_deadline, (int, float)) and 0 < reply_deadline < WECHAT_ANSWER_TIMEOUT
        ):
            raise ValidationError(
                "reply_deadline",
                f"must be seconds above 0 and below {WECHAT_ANSWER_TIMEOUT:g} (WeChat's wait)",
                reply_deadline,
            )
        if isinstance(shutdown_grace, bool) or not (
            isinstance(shutdown_grace, (int, float))
            and math.isfinite(shutdown_grace)
            and shutdown_grace >= 0
        ):
            raise ValidationError("shutdown_grace", "must be seconds (0 or more)", shutdown_grace)
        if isinstance(max_text_bytes, bool) or not isinstance(max_text_bytes, int):
            raise ValidationError("max_text_bytes", "must be an int (bytes)", max_text_bytes)
        if not 16 <= max_text_bytes <= MAX_TEXT_BYTES:
            raise ValidationError(
                "max_text_bytes",
                f"must be 16 to {MAX_TEXT_BYTES} (WeChat refuses longer text: 45002)",
                max_text_bytes,
            )
        for name, flag in (("show_typing", show_typing), ("ai_generated", ai_generated)):
            if not isinstance(flag, bool):
                raise ValidationError(name, "must be a bool", flag)
        #: The client the answers are sent with.
        self.wechat: AsyncWeChat = wechat
        #: Seconds from a push's arrival to answer WeChat by.
        self.reply_deadline: float = float(reply_deadline)
        #: Whether "typing..." shows while an answer is late.
        self.show_typing: bool = show_typing
        #: Whether every message sent is marked AI-generated (answers then go through the API).
        self.ai_generated: bool = ai_generated
        #: Bytes of UTF-8 a text message holds at most; longer text is sent in parts.
        self.max_text_bytes: int = max_text_bytes
        #: Told about every answer that did not fully reach its user.
        self.on_delivery_failed: OnDeliveryFailed | None = on_delivery_failed
        #: Seconds answers in flight get to finish when :meth:`running` ends.
        self.shutdown_grace: float = float(shutdown_grace)
        #: The clock deadlines, renewals and the grace period are measured on.
        self.clock: Clock = clock if clock is not None else SystemClock()
        #: The client's service-window ledger, consulted before each late message (if any).
        self.windows: WindowsAPI | None = windows
        self._group: TaskGroup | None = None
        self._closing = False
        self._jobs: set[_Job] = set()
        self._idle = anyio.Event()
        self._idle.set()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reply_deadline={self.reply_deadline:g}, "
            f"in_flight={len(self._jobs)})"
        )

    # ------------------------------------------------------------------ lifetime

    @property
    def in_flight(self) -> int:
        """Answers still running or being delivered."""
        return len(self._jobs)

    @property
    def accepting(self) -> bool:
        """Whether new pushes can be answered: :meth:`running` is open and not closing."""
        return self._group is not None and not self._closing

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the task group answers run in; on exit, give them the grace period, then cut
        off (and report) those still running."""
        if self._group is not None:
            raise RuntimeError("this endpoint is already running")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group, self._closing = group, False
        try:
            yield
        finally:
            self._closing = True
            try:
                with anyio.CancelScope(shield=True):
                    await within(self.clock, self.shutdown_grace, self._idle.wait)
                group.cancel_scope.cancel()
            finally:
                await group.__aexit__(None, None, None)
                self._group = None

    async def wait_idle(self) -> None:
        """Return once no answer is running or being delivered."""
        await self._idle.wait()

    def check_running(self) -> None:
        """Raise ``RuntimeError`` if :meth:`running` was never entered (a set-up mistake);
        while it closes, and after, pushes are answered 503 instead."""
        if self._group is None and not self._closing:
            raise RuntimeError(
                "CallbackEndpoint(wechat=...) answers from a task group of its own: open it "
                "with 'async with endpoint.running():' in your application's lifespan (see "
                "the wechat_kf.callback.starlette and .aiohttp documentation)"
            )

    # ------------------------------------------------------------------ one push

    async def answer(
        self,
        incoming: Incoming,
        *,
        arrived: float,
        on_message: OnMessageCall,
        passive: PassiveBody,
        settle: Settle,
    ) -> bytes | None:
        """Start answering ``incoming`` (arrived at ``arrived`` on :attr:`clock`); return the
        body to answer WeChat with, by the deadline. ``None``: shutting down (answer 503)."""
        self.check_running()
        group = self._group
        if group is None or self._closing:
            await settle(incoming, None)
            return None
        job = _Job(self, incoming, arrived)
        if not self._jobs:
            self._idle = anyio.Event()
        self._jobs.add(job)
        group.start_soon(self._run, job, on_message, passive, settle)
        await job.decided.wait()
        return job.body

    async def _run(
        self, job: _Job, on_message: OnMessageCall, passive: PassiveBody, settle: Settle
    ) -> None:
        buffered: list[Reply | Message] = []  # produced, not taken yet when cut off
        try:
            send, receive = anyio.create_memory_object_stream[_Item](math.inf)
            async with anyio.create_task_group() as handler:
                handler.start_soon(_produce, on_message, job.incoming, send)
                with receive:
                    try:
                        await self._deliver(job, receive, passive, settle)
                    except anyio.get_cancelled_exc_class():
                        buffered = _buffered(receive)
                        raise
                handler.cancel_scope.cancel()  # a failure stopped the answer: its rest is moot
            await job.typing.stop()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(CUT_OFF_CLEANUP):
                if not job.decided.is_set():
                    await self._decide(job, None, settle)
                unsent = [*job.queue, *buffered]
                await self._fail(job, "shutdown", unsent=unsent, maybe_sent=job.sending)
                await job.typing.stop()
            raise
        except Exception as exc:  # a bug here must not end the application's task group
            logger.exception("answer to %s: delivery failed unexpectedly", job.openid)
            if not job.decided.is_set():  # the work ran: its retries must not run it again
                await self._decide(job, SUCCESS, settle)
            await self._fail(job, "refused", _single(exc), unsent=job.queue)
        finally:
            if not job.decided.is_set():
                job.decided.set()
            self._jobs.discard(job)
            if not self._jobs:
                self._idle.set()

    async def _decide(self, job: _Job, body: bytes | None, settle: Settle) -> None:
        """WeChat's answer to the push: given to the waiting request first, then stored (a
        retry meanwhile waits for it), so that a slow store never delays the answer."""
        job.body = body
        job.decided.set()
        await settle(job.incoming, body)

    async def _deliver(
        self,
        job: _Job,
        receive: MemoryObjectReceiveStream[_Item],
        passive: PassiveBody,
        settle: Settle,
    ) -> None:
        first = await self._next(job, receive)
        reply = self._passive_reply(first.value) if isinstance(first, _Whole) else None
        if reply is not None:
            try:
                body = passive(job.incoming, reply)
            except Exception as exc:  # not a reply WeChat takes (a transfer of an event, ...)
                await self._decide(job, SUCCESS, settle)
                await self._fail(job, "refused", exc, unsent=(reply,))
            else:
                await self._decide(job, body, settle)
            return
        await self._decide(job, SUCCESS, settle)
        if first is TIMED_OUT:
            first = await self._next(job, receive)
        try:
            await self._take(job, first)
            while job.queue or not job.ended:
                if not job.queue:
                    await self._take(job, await self._next(job, receive))
                    continue
                await self._send_next(job, receive)
        except _NotSent as stop:
            unsent = [*job.queue, *_buffered(receive)]
            await self._fail(job, stop.reason, stop.error, unsent=unsent, maybe_sent=job.sending)
            return
        if job.raised is not None:  # what came before the failure was delivered
            await self._fail(job, "handler", job.raised)

    # ------------------------------------------------------------------ the answer's values

    async def _next(
        self, job: _Job, receive: MemoryObjectReceiveStream[_Item]
    ) -> _Item | _End | object:
        """The answer's next value; before the decision, :data:`TIMED_OUT` at the deadline.

        After the decision "typing..." shows while waiting (after a second, once a message
        went out)."""

        async def received() -> _Item | _End:
            try:
                return await receive.receive()
            except anyio.EndOfStream:
                return _END

        if not job.decided.is_set():
            return await within(self.clock, job.deadline - self.clock.now(), received)
        if not self.show_typing:
            return await received()
        async with anyio.create_task_group() as typing:
            typing.start_soon(job.typing.keep, TYPING_AFTER_SEND if job.sent else 0.0)
            item = await received()
            typing.cancel_scope.cancel()
        return item

    def _passive_reply(self, value: object) -> Reply | None:
        """The passive reply for a whole answer of one value, if it is one passive message.

        ``None`` sends it through the API instead: a message type (``wechat_kf.Text``, a
        menu, ...), a text longer than one message, any answer with ``ai_generated``.
        """
        if value is None:
            return Success()
        if isinstance(value, (Success, TransferCustomerService)):
            return value
        if self.ai_generated:
            return None
        if isinstance(value, str):
            try:
                # (an empty text through the API is the same "success", nothing sent)
                value = TextReply(content=value) if value else Success()  # pragma: no mutate
            except ValidationError:
                return None  # sent through the API, which says what is wrong with it
        if isinstance(value, TextReply) and len(value.content.encode()) > self.max_text_bytes:
            return None
        return value if isinstance(value, Reply) else None

    async def _take(self, job: _Job, item: object) -> None:
        """Queue the messages of one value of the answer (or note its end)."""
        if item is _END:
            job.ended = True
            return
        if isinstance(item, _Raised):  # the answer ends here; what came before still goes
            # (a _Raised is the last item: the next one is the end anyway)
            job.raised, job.ended = item.error, True  # pragma: no mutate
            return
        assert isinstance(item, (_Whole, _Part))
        value = item.value
        if value is None or isinstance(value, Success):
            return
        if isinstance(value, TransferCustomerService):
            await self._fail(job, "too_late", unsent=(value,))
            return
        if isinstance(value, str):
            if not value:
                return
            value = Text(content=value)
        elif isinstance(value, Reply):
            message = value.as_message()
            if message is None:
                raise _NotSent("handler", TypeError(f"{type(value).__name__} has no message form"))
            value = message
        if not isinstance(value, Message):
            raise _NotSent(
                "handler",
                TypeError(
                    f"on_message answered a {type(value).__name__}: answer a wechat_kf.callback "
                    "reply, a wechat_kf message, a str or None, or a list or async iterator of "
                    "those"
                ),
            )
        if isinstance(value, Text):
            left = max(1, job.budget - job.sent - len(job.queue))
            try:
                parts = split_text(value.content, self.max_text_bytes, max_parts=left)
            except ValidationError as exc:
                job.queue.append(value)
                raise _NotSent("refused", exc) from None
            job.queue.extend(Text(content=part) for part in parts)
        else:
            job.queue.append(value)

    async def _drain(self, job: _Job, receive: MemoryObjectReceiveStream[_Item]) -> None:
        """Take the rest of the answer (waiting for its end, "typing..." showing)."""
        while not job.ended:
            await self._take(job, await self._next(job, receive))

    # ------------------------------------------------------------------ sending

    async def _window_allows(self, job: _Job) -> bool:
        """Whether another message may be sent for this push: the one place a late delivery
        decides to send. The push's own budget (5 after a user message, 3 after an event);
        past it the rest is reported ``over_budget``. The user's window as the client's
        ledger (:attr:`windows`) knows it is checked by the send itself, atomically (other
        answers and sends spend the same window): see :meth:`_send`."""
        return job.sent < job.budget

    async def _send_next(self, job: _Job, receive: MemoryObjectReceiveStream[_Item]) -> None:
        if not await self._window_allows(job):  # (the last message allowed drained it already)
            await self._drain(job, receive)  # pragma: no mutate
            raise _NotSent("over_budget")
        if job.sent + 1 == job.budget:  # the last message the window allows: the rest joins
            await self._drain(job, receive)  # it if it can, so wait for the rest
            message = self._merged(job.queue.popleft(), job.queue)
        else:
            message = job.queue.popleft()
        await self._send(job, message)

    def _merged(self, message: Message, rest: deque[Message]) -> Message:
        """``message`` with the texts of ``rest`` after it, when they are all text and fit."""
        if not rest or not isinstance(message, Text):
            return message
        texts = [message.content]
        for other in rest:
            if not isinstance(other, Text):
                return message
            texts.append(other.content)
        joined = "\n\n".join(texts)
        if len(joined.encode()) > self.max_text_bytes:
            return message
        rest.clear()
        return Text(content=joined)

    async def _send(self, job: _Job, message: Message) -> None:
        """Send ``message``; with a window ledger, only if it does not know the user is out of
        messages or outside every window (``skip_unreachable``: the message is reserved in
        the ledger first, so two answers to one user never spend more than WeChat allows)."""
        job.sending = message
        try:
            await self.wechat.message.send(
                job.openid,
                message,
                ai_generated=self.ai_generated,
                skip_unreachable=self.windows is not None,
            )
        except UnreachableError as exc:  # no request: the ledger knows it would fail
            job.sending = None
            job.queue.appendleft(message)
            raise _NotSent("over_budget", exc) from None
        except WeChatError as exc:
            if _may_have_reached(exc):
                raise _NotSent("unknown", exc) from None
            job.sending = None
            job.queue.appendleft(message)
            raise _NotSent("refused", exc) from None
        job.sending = None
        job.sent += 1
        job.typing.message_sent()

    # ------------------------------------------------------------------ failures

    async def _fail(
        self,
        job: _Job,
        reason: FailureReason,
        error: BaseException | None = None,
        *,
        unsent: Iterable[Reply | Message] = (),
        maybe_sent: Message | None = None,
    ) -> None:
        """Log the failure with the openid and tell ``on_delivery_failed`` (never raises)."""
        # (no failure follows a passive reply today: the answer ends with it; kept for safety)
        passive = 0 if job.body is None or job.body == SUCCESS else 1  # pragma: no mutate
        failure = DeliveryFailure(
            incoming=job.incoming,
            reason=reason,
            error=error,
            sent=job.sent + passive,  # pragma: no mutate (see passive)
            unsent=tuple(unsent),
            maybe_sent=maybe_sent,
        )
        if reason == "handler":
            logger.error("%s", failure, exc_info=error)  # pragma: no mutate (the same text)
        else:
            logger.warning("%s", failure)  # pragma: no mutate (the same text)
        hook = self.on_delivery_failed
        if hook is None:
            return
        try:
            result = hook(failure)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_delivery_failed raised for the answer to %s", job.openid)
