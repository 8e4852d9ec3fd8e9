"""Bulk sends: one notice to many users, fast, bounded and accountable.

``wx.message.send_many(...)`` returns a :class:`SendReport`; ``wx.message.stream_many(...)``
yields each :class:`SendResult` as it happens, in constant memory. Both run on the engine here:

* ``max_concurrency`` workers share one iterator over the recipients (a list, a generator or an
  async iterable): a recipient is read only when a worker is free to send to it, so nothing is
  materialised up front and at most ``max_concurrency`` requests are ever in flight. (Workers
  rather than a task per recipient: spawning a task costs more than the SDK's whole share of a
  send.) The SDK's own connection pool grows to ``max_concurrency``.
* A fixed message is encoded once; each body splices the recipient's openid in. A callable
  message (``openid -> message``, sync or async) is called per recipient.
* A message holding a local file (``Image(file=...)``) is uploaded once, before the first send
  (through the media-id cache of ``wx.media``); if that upload fails, every recipient is
  ``skipped`` with its error. A send WeChat refuses with 40007 (the media expired mid-run) makes
  the file be uploaded again, once for the whole run, and that recipient's send made once more:
  the refused send reached no one.
* Every recipient gets exactly one result (see :class:`SendStatus`). Sends are never retried
  unless the request provably never left or WeChat answered busy (-1), as for ``send``: a
  recipient is never sent the notice twice because of the SDK. (Retrying after -1 assumes that
  WeChat did nothing; ``busy_is_unknown=True`` reports such a recipient ``unknown`` instead.)
* An error that every further send would hit too (:data:`STOP_ERRORS`: the daily quota 45009,
  a configuration error, a missing permission, no access token to be had, a closed client)
  stops the run: requests in flight finish and the recipients not yet attempted are reported
  ``skipped`` with that error as the reason.
* :meth:`SendControl.stop` stops a run the same way (cooperative cancellation). Workers waiting
  for the rate limiter stop waiting at once (their slots are given back) and their recipients
  are reported ``skipped``: a stop never waits out the rate.
* Cancelling the caller stops new sends at once; requests already in flight get
  ``BULK_CANCEL_GRACE`` seconds to answer and are reported ``unknown`` if they do not. The
  partial report is on the :class:`SendControl` passed in.
* ``rate`` (messages per second, or a shared :class:`RateLimiter`) paces the requests.
* Every send goes through the client's service-window ledger (``wx.windows``), which learns from
  its answer. With ``skip_unreachable`` a worker first reserves the recipient's message there
  (before the rate limiter: a skipped recipient costs no slot); a recipient the ledger knows
  cannot be reached is ``skipped`` with an :class:`UnreachableError`, and a reservation whose
  request never left (stopped, cancelled, refused before sending) is given back.
* A stream's reader that leaves early finds every result it did not read (buffered, or ended
  in flight afterwards) on :attr:`SendStream.unread`: no send goes unreported.

Errors on results carry no traceback: a million failed results would otherwise keep a million
stack frames alive. The first failure of a message callable is logged with its traceback.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from operator import attrgetter
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Final, TypeAlias

import anyio
import attrs
from anyio.lowlevel import checkpoint_if_cancelled
from anyio.streams.memory import MemoryObjectReceiveStream

from wechat_kf import _defaults
from wechat_kf import _validation as check
from wechat_kf._errors import (
    APIError,
    ClientUsageError,
    ConfigurationError,
    DailyQuotaError,
    InvalidMediaIdError,
    MessageBuildError,
    SendCancelledError,
    SendInterruptedError,
    TokenError,
    UnauthorizedError,
    UnreachableError,
    WeChatError,
)
from wechat_kf._pipeline import Endpoint, encode_json
from wechat_kf._rate import RateLimiter
from wechat_kf._redaction import get_logger
from wechat_kf.messages import Message, envelope

if TYPE_CHECKING:
    from typing_extensions import Self

    from wechat_kf._pipeline import Pipeline
    from wechat_kf._window_ledger import Reservation, WindowLedger
    from wechat_kf.media import MediaAPI, ResolvedMessage

    #: A message with local files and what they resolved to, for a re-upload after 40007.
    MediaState = tuple[Message, ResolvedMessage]

__all__ = [
    "STOP_ERRORS",
    "MessageBuildError",
    "MessageFactory",
    "RateLimiter",
    "Recipients",
    "SendCancelledError",
    "SendControl",
    "SendInterruptedError",
    "SendReport",
    "SendResult",
    "SendStatus",
    "SendStream",
    "SendSummary",
]

logger: Final = get_logger("wechat_kf")

#: Errors that stop a bulk send: every further send would fail the same way. A
#: :class:`TokenError` means the SDK cannot get an access token (the token endpoint or the
#: token store is down, a rejected token cannot be force-refreshed yet): the recipients not
#: attempted are ``skipped`` rather than each waiting on the token service in turn.
STOP_ERRORS: Final[tuple[type[WeChatError], ...]] = (
    DailyQuotaError,
    ConfigurationError,
    UnauthorizedError,
    TokenError,
    ClientUsageError,
)

#: The reason a cancelled bulk send gives (``stopped_by``, and each recipient it skipped).
_CANCELLED: Final = "the bulk send was cancelled"

#: The recipients of a bulk send: openids, from any iterable or async iterable.
Recipients: TypeAlias = Iterable[str] | AsyncIterable[str]
#: A personalised message: ``openid -> message`` (or an awaitable of one).
MessageFactory: TypeAlias = Callable[[str], Message | Awaitable[Message]]


# --------------------------------------------------------------------------- errors


# --------------------------------------------------------------------------- results


class SendStatus(str, enum.Enum):
    """What happened to one recipient of a bulk send."""

    #: WeChat accepted the message.
    SENT = "sent"
    #: Not delivered: WeChat refused it (a typed :class:`APIError`), the request never left
    #: (:class:`ConnectFailedError`; no access token: a :class:`TokenError`), or it failed
    #: before any request (bad openid, message).
    FAILED = "failed"
    #: The request may have reached WeChat but no answer says so (read timeout, connection
    #: lost after sending, HTTP 5xx, a garbled answer, cancelled in flight, ``-1`` with
    #: ``busy_is_unknown=True``). Do not resend blindly.
    UNKNOWN = "unknown"
    #: Not attempted; ``error`` says why (the error that stopped the run, the cancellation, or
    #: with ``skip_unreachable`` an :class:`UnreachableError` from the window ledger).
    SKIPPED = "skipped"


@attrs.frozen(kw_only=True)
class SendResult:
    """The outcome for one recipient: its position in the input, openid, status and error.

    ``error`` is ``None`` when ``sent``; for ``failed`` and ``unknown`` the typed error; for
    ``skipped`` the reason the recipient was not attempted.
    """

    index: int
    openid: str
    status: SendStatus
    error: WeChatError | None = None

    @property
    def ok(self) -> bool:
        """Whether the message was sent."""
        return self.status is SendStatus.SENT

    @property
    def errcode(self) -> int | None:
        """WeChat's errcode when the error is an :class:`APIError`, else ``None``."""
        error = self.error
        return error.errcode if isinstance(error, APIError) else None


def _counts(counts: dict[SendStatus, int]) -> MappingProxyType[SendStatus, int]:
    return MappingProxyType({status: counts.get(status, 0) for status in SendStatus})


@attrs.frozen(kw_only=True, eq=False)
class SendSummary:
    """The counts of a bulk send (all a streaming send keeps).

    Attributes:
        counts: recipients per :class:`SendStatus` (every status present).
        errcodes: recipients WeChat refused, per errcode (``failed`` results only).
        stopped_by: what ended the run early: an error of :data:`STOP_ERRORS`, or a
            :class:`SendCancelledError`; ``None`` when every recipient was attempted.
        complete: whether every recipient has a result; ``False`` when the input was not read
            to its end (the caller was cancelled, the reader of a stream left early, or the
            recipients iterable raised): those after the last result were not attempted.
            ``False`` too while the run goes on (a request still in flight).
    """

    counts: MappingProxyType[SendStatus, int]
    errcodes: MappingProxyType[int, int]
    stopped_by: WeChatError | None = None
    complete: bool = True

    @property
    def total(self) -> int:
        """Recipients with a result."""
        return sum(self.counts.values())

    @property
    def sent(self) -> int:
        """Recipients WeChat accepted the message for."""
        return self.counts[SendStatus.SENT]

    @property
    def failed(self) -> int:
        """Recipients the message was not delivered to."""
        return self.counts[SendStatus.FAILED]

    @property
    def unknown(self) -> int:
        """Recipients whose request may have reached WeChat without a definite answer."""
        return self.counts[SendStatus.UNKNOWN]

    @property
    def skipped(self) -> int:
        """Recipients not attempted."""
        return self.counts[SendStatus.SKIPPED]


@attrs.frozen(kw_only=True, eq=False)
class SendReport(SendSummary):
    """The outcome of :meth:`MessageAPI.send_many`: the counts and one result per recipient.

    ``results`` is in input order (``results[i].index == i``).
    """

    results: tuple[SendResult, ...] = ()

    def with_status(self, status: SendStatus | str) -> list[SendResult]:
        """The results with ``status``, in input order."""
        wanted = SendStatus(status)
        return [result for result in self.results if result.status is wanted]


# --------------------------------------------------------------------------- control


class SendControl:
    """Watch, stop and read the outcome of a running ``send_many`` (pass ``control=``).

    ``stop()`` is cooperative cancellation: no new sends start, requests in flight finish, and
    ``send_many`` returns normally with the rest ``skipped`` (recipients whose workers were
    waiting for the rate limiter included: the wait is cut short, the request never leaves).
    ``report`` holds the report once the run ended in any way, cancellation of the caller
    included. ``summary()`` counts so far.
    """

    __slots__ = ("_run", "_stop_requested", "report")

    def __init__(self) -> None:
        self._run: _Run | None = None
        self._stop_requested = False
        #: The (possibly partial) report once the run ended; ``None`` while it runs.
        self.report: SendReport | None = None

    def stop(self) -> None:
        """Start no new sends; the run finishes those in flight and reports the rest skipped.

        Workers waiting for the rate limiter stop waiting at once: it returns promptly.
        """
        self._stop_requested = True
        if self._run is not None:
            self._run.halt(SendCancelledError("the bulk send was stopped"))

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop_requested

    def summary(self) -> SendSummary:
        """The counts so far (all zero before the run starts)."""
        if self._run is None:
            return SendSummary(counts=_counts({}), errcodes=MappingProxyType({}))
        return self._run.summary()

    def _attach(self, run: _Run) -> None:
        if self._run is not None:
            raise RuntimeError("a SendControl drives one bulk send; create one per call")
        self._run = run
        if self._stop_requested:
            run.halt(SendCancelledError("the bulk send was stopped"))


# --------------------------------------------------------------------------- engine


class _End:
    """The recipients are exhausted (or could not be read further)."""


_END: Final = _End()


def _without_traceback(error: BaseException) -> None:
    """Drop the frames an error and the chain behind it keep alive; keep types, texts, fields.

    The chain is followed as a traceback prints it (``__cause__``, else ``__context__``), to its
    end: a chain that loops back on itself ends where it does.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def _message_of(value: object) -> Message:
    if not isinstance(value, Message):
        raise TypeError(f"message must be a wechat_kf message, got {type(value).__name__}")
    return value


class _Body:
    """Builds each recipient's request body: once-encoded for a fixed message.

    A message holding local files is resolved (its files uploaded, through ``media``) before
    its body is built: a fixed one once, in :meth:`prepare`; a callable's per recipient.
    """

    __slots__ = (
        "_ai_generated",
        "_factory",
        "_kf_account",
        "_media",
        "_message",
        "_refreshing",
        "_resolved",
        "_suffix",
    )

    def __init__(
        self,
        message: Message | MessageFactory,
        *,
        kf_account: str | None,
        ai_generated: bool,
        media: MediaAPI,
    ) -> None:
        self._kf_account = kf_account
        self._ai_generated = ai_generated
        self._media = media
        self._factory: MessageFactory | None = None
        self._message: Message | None = None
        self._resolved: ResolvedMessage | None = None
        self._refreshing: anyio.Lock | None = None
        self._suffix = b""  # pragma: no mutate (set before any use: below, or by prepare())
        if isinstance(message, Message):
            if message.media_fields and message.has_local_files:
                self._message = message  # uploaded by prepare(), before the first send
            else:
                self._suffix = self._encode(message)
        elif callable(message):
            self._factory = message
        else:
            raise TypeError(
                "message must be a wechat_kf message or a callable openid -> message, "
                f"got {type(message).__name__}"
            )

    def _encode(self, message: Message) -> bytes:
        body = envelope("", message, kf_account=self._kf_account, ai_generated=self._ai_generated)
        # '{"touser":' + openid + ',' + the rest of the object: byte for byte what
        # encode_json(envelope(openid, ...)) produces, without re-encoding the message.
        return encode_json(body).removeprefix(b'{"touser":""')

    async def prepare(self) -> None:
        """Upload a fixed message's local files (once) and encode it."""
        if self._message is not None and self._resolved is None:
            self._resolved = await self._media.resolve(self._message)
            self._suffix = self._encode(self._resolved.message)

    @property
    def personalised(self) -> bool:
        """Whether a callable builds each recipient's message."""
        return self._factory is not None

    @property
    def state(self) -> MediaState | None:
        """A fixed message's local files and what they resolved to (``None``: it has none)."""
        if self._message is None or self._resolved is None:
            return None
        return (self._message, self._resolved)

    def fixed(self, openid: str) -> bytes:
        """The body for a fixed message."""
        return b'{"touser":' + encode_json(openid) + self._suffix

    async def personal(self, openid: str) -> tuple[bytes, MediaState | None]:
        """The body for a message the callable builds; its failures become typed errors."""
        assert self._factory is not None
        try:
            built = self._factory(openid)
            if inspect.isawaitable(built):
                built = await built
            message = _message_of(built)
        except WeChatError:
            raise
        except Exception as exc:
            raise MessageBuildError(
                f"the message callable failed for this recipient: {type(exc).__name__}: {exc}"
            ) from exc
        state: MediaState | None = None
        if message.media_fields and message.has_local_files:
            resolved = await self._media.resolve(message)  # its errors: typed, never sent
            state = (message, resolved)
            message = resolved.message
        body = envelope(
            openid, message, kf_account=self._kf_account, ai_generated=self._ai_generated
        )
        return encode_json(body), state

    async def rebuilt(self, openid: str, state: MediaState) -> bytes:
        """The body again after WeChat refused ``state``'s media (40007): files re-uploaded.

        For a fixed message the first worker to get here re-uploads; the others, refused with
        the same media, reuse its upload.
        """
        message, resolved = state
        if self._factory is not None:
            again = await self._media.resolve(message, stale=resolved)
            body = envelope(
                openid, again.message, kf_account=self._kf_account, ai_generated=self._ai_generated
            )
            return encode_json(body)
        if self._refreshing is None:
            self._refreshing = anyio.Lock()
        async with self._refreshing:
            if self._resolved is resolved:  # nobody re-uploaded since this body was built
                self._resolved = await self._media.resolve(message, stale=resolved)
                self._suffix = self._encode(self._resolved.message)
        return self.fixed(openid)


class _Run:
    """One bulk send: workers pull recipients, send, and record exactly one result each."""

    def __init__(
        self,
        pipeline: Pipeline,
        endpoint: Endpoint,
        recipients: Recipients,
        message: Message | MessageFactory,
        *,
        kf_account: str | None,
        ai_generated: bool,
        max_concurrency: int,
        rate: float | RateLimiter | None,
        collect: bool,
        media: MediaAPI,
        ledger: WindowLedger,
        skip_unreachable: bool,
    ) -> None:
        if isinstance(recipients, str | bytes):
            raise TypeError("recipients must be an iterable of openids, not one string")
        if (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ValueError(f"max_concurrency must be an integer >= 1, got {max_concurrency!r}")
        if kf_account is not None:
            check.kf_account(kf_account)
        self._body = _Body(message, kf_account=kf_account, ai_generated=ai_generated, media=media)
        self._pipeline = pipeline
        self._ledger = ledger
        self._reserve = skip_unreachable
        self._endpoint = endpoint
        self._iterator: Iterator[str] | None = None
        self._aiterator: AsyncIterator[str] | None = None  # pragma: no mutate (set or unused)
        if isinstance(recipients, AsyncIterable):
            self._aiterator = aiter(recipients)
        elif isinstance(recipients, Iterable):
            self._iterator = iter(recipients)
        else:
            raise TypeError(
                f"recipients must be an iterable or async iterable of openids, "
                f"got {type(recipients).__name__}"
            )
        self._workers = max_concurrency
        self._limiter = rate if isinstance(rate, RateLimiter) or rate is None else RateLimiter(rate)
        self._grace = _defaults.BULK_CANCEL_GRACE
        self._collect = collect
        # Set by execute() before any worker runs:
        self._deliver: Callable[[SendResult], Awaitable[None]] | None = None  # pragma: no mutate
        self.results: list[SendResult] = []
        #: Streaming: the results recorded but not yet handed to the reader, in record order.
        self._pending: dict[int, SendResult] | None = None if collect else {}
        self._counts: dict[SendStatus, int] = dict.fromkeys(SendStatus, 0)
        self._errcodes: dict[int, int] = {}
        self._next_index = 0
        self._exhausted = False
        self._halted: WeChatError | None = None
        self._incomplete = False
        self._drain = True
        self._source_error: BaseException | None = None
        self._pull_lock: anyio.Lock | None = None  # pragma: no mutate (set by execute())
        self._inflight: set[anyio.CancelScope] = set()
        self._rate_waits: set[anyio.CancelScope] = set()
        self._workers_done: anyio.Event | None = None  # pragma: no mutate (set by execute())
        self._active = 0  # pragma: no mutate (set by execute())
        self._factory_logged = False
        self._cancelled: type[BaseException] = BaseException  # pragma: no mutate (execute())

    # ---------------------------------------------------------------- state

    def halt(self, reason: WeChatError) -> None:
        """Start no new sends (the first reason wins); the rest is then reported skipped.

        Workers waiting for the rate limiter are woken at once (their slots are given back).
        """
        if self._halted is None:
            self._halted = reason
            for scope in tuple(self._rate_waits):
                scope.cancel()

    def abandon(self, reason: WeChatError) -> None:
        """Start no new sends and do not read the rest of the recipients (nobody wants them)."""
        self.halt(reason)
        self._drain = False
        self._incomplete = True

    def summary(self) -> SendSummary:
        """The counts so far."""
        return SendSummary(
            counts=_counts(self._counts),
            errcodes=MappingProxyType(dict(self._errcodes)),
            stopped_by=self._halted,
            # Every recipient read and none still in a worker's hands (a request in flight).
            complete=self._exhausted and self._active == 0 and not self._incomplete,
        )

    def report(self) -> SendReport:
        """The report: counts and (when collecting) every result in input order."""
        self.results.sort(key=attrgetter("index"))
        summary = self.summary()
        return SendReport(
            counts=summary.counts,
            errcodes=summary.errcodes,
            stopped_by=summary.stopped_by,
            complete=summary.complete,
            results=tuple(self.results),
        )

    def handed(self, result: SendResult) -> None:
        """Streaming: the reader has ``result`` (recorded before it was handed over)."""
        assert self._pending is not None
        del self._pending[result.index]

    def unread(self) -> tuple[SendResult, ...]:
        """Streaming: the results recorded and never handed to the reader, in record order."""
        assert self._pending is not None
        return tuple(self._pending.values())

    def _record(self, result: SendResult) -> None:
        self._counts[result.status] += 1
        if result.status is SendStatus.FAILED and isinstance(result.error, APIError):
            errcode = result.error.errcode
            self._errcodes[errcode] = self._errcodes.get(errcode, 0) + 1
        if self._collect:
            self.results.append(result)
        if self._pending is not None:
            self._pending[result.index] = result

    # ---------------------------------------------------------------- running

    async def execute(self, deliver: Callable[[SendResult], Awaitable[None]] | None = None) -> None:
        """Send to every recipient; each result is recorded, then handed to ``deliver``."""
        self._deliver = deliver
        self._cancelled = anyio.get_cancelled_exc_class()
        self._pipeline.ensure_connections(self._workers)
        if self._aiterator is not None:
            self._pull_lock = anyio.Lock()
        self._workers_done = anyio.Event()
        self._active = self._workers
        try:
            await self._body.prepare()
        except WeChatError as exc:  # the upload of the message's file: nobody can be sent it
            _without_traceback(exc)
            self.halt(exc)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch)
                for _ in range(self._workers):
                    tg.start_soon(self._work)
        except BaseException:
            self._incomplete = True
            raise
        if self._halted is not None:  # the rest (unless abandoned, or unreadable): skipped
            await self._skip_rest(self._halted)  # cancelled here: the rest was not all read
        if self._source_error is not None:
            raise self._source_error

    async def _watch(self) -> None:
        """Wait for the workers; if cancelled first, bound the requests still in flight."""
        assert self._workers_done is not None
        try:
            await self._workers_done.wait()
        except self._cancelled:
            self.halt(SendCancelledError(_CANCELLED))
            # Halted first: no request starts after this, so every one in flight is here.
            deadline = anyio.current_time() + self._grace
            for scope in self._inflight:
                scope.deadline = deadline
            raise

    async def _work(self) -> None:
        iterator = self._iterator
        try:
            while self._halted is None:
                await checkpoint_if_cancelled()
                if iterator is not None:
                    try:
                        openid = next(iterator)
                    except StopIteration:
                        self._exhausted = True
                        return
                    except Exception as exc:
                        self._source_failed(exc)
                        return
                else:
                    item = await self._pull_async(draining=False)
                    if isinstance(item, _End):
                        return
                    openid = item
                index = self._next_index
                self._next_index = index + 1
                result = await self._process(index, openid)
                if self._deliver is not None:
                    await self._deliver(result)
        finally:
            self._active -= 1
            if self._active == 0 and self._workers_done is not None:
                self._workers_done.set()

    async def _pull_async(self, *, draining: bool) -> str | _End:
        """The next recipient of an async iterable (one reader at a time)."""
        assert self._aiterator is not None
        assert self._pull_lock is not None
        async with self._pull_lock:
            if self._exhausted or self._source_error is not None:
                return _END
            if self._halted is not None and not draining:
                return _END
            try:
                return await anext(self._aiterator)
            except StopAsyncIteration:
                self._exhausted = True
                return _END
            except Exception as exc:
                self._source_failed(exc)
                return _END

    def _pull_sync(self) -> str | _End:
        assert self._iterator is not None
        if self._exhausted or self._source_error is not None:
            return _END
        try:
            return next(self._iterator)
        except StopIteration:
            self._exhausted = True
            return _END
        except Exception as exc:
            self._source_failed(exc)
            return _END

    def _source_failed(self, exc: Exception) -> None:
        self._source_error = exc
        self._incomplete = True  # pragma: no mutate (never exhausted after a failure: explicit)
        self.halt(SendCancelledError(f"reading the recipients failed: {type(exc).__name__}"))

    async def _process(self, index: int, openid: str) -> SendResult:
        """One recipient, from its openid to its recorded result."""
        try:
            result = await self._attempt(index, openid)
        except self._cancelled:
            # Cancelled before its request left (building the message, waiting for the rate).
            # The send is being cancelled: halted here if this worker saw it before _watch().
            self.halt(SendCancelledError(_CANCELLED))
            self._record(
                SendResult(
                    index=index, openid=openid, status=SendStatus.SKIPPED, error=self._halted
                )
            )
            raise
        self._record(result)
        return result

    async def _attempt(self, index: int, openid: str) -> SendResult:
        try:
            check.openid(openid)
            if self._body.personalised:
                body, state = await self._body.personal(openid)
            else:
                body, state = self._body.fixed(openid), self._body.state
        except WeChatError as exc:
            self._log_factory_failure(exc)
            _without_traceback(exc)
            return SendResult(index=index, openid=openid, status=SendStatus.FAILED, error=exc)
        reservation: Reservation | None = None
        if self._reserve and self._halted is None:
            try:  # before the rate limiter: a skipped recipient costs no request and no slot
                reservation = await self._ledger.reserve(openid)
            except UnreachableError as exc:
                return SendResult(index=index, openid=openid, status=SendStatus.SKIPPED, error=exc)
        try:
            if self._limiter is not None and self._halted is None:
                # halt() cancels this scope: a stop does not wait out the rate (the slot is
                # given back, the recipient reported skipped below).
                with anyio.CancelScope() as waiting:
                    self._rate_waits.add(waiting)
                    try:
                        await self._limiter.acquire()
                    finally:
                        self._rate_waits.discard(waiting)  # pragma: no mutate (hygiene)
        except BaseException:
            await self._unreserve(reservation)  # cancelled before the request left
            raise
        if self._halted is not None:
            await self._unreserve(reservation)
            return SendResult(
                index=index, openid=openid, status=SendStatus.SKIPPED, error=self._halted
            )
        status = SendStatus.SENT
        error: WeChatError | None = None
        with anyio.CancelScope(shield=True) as scope:  # bounded by _watch() once cancelled
            self._inflight.add(scope)
            try:
                # Through the window ledger, which learns from the answer.
                await self._ledger.send(
                    openid, functools.partial(self._request, openid, body, state), reservation
                )
            except WeChatError as exc:
                # unknown: it left and no answer says what happened (a read timeout, a lost
                # connection, a garbled answer, -1 with busy_is_unknown); failed: WeChat refused
                # it, or it never left (no access token, the connection could not be made).
                error = exc
                status = SendStatus.UNKNOWN if exc.may_have_reached_wechat else SendStatus.FAILED
                if isinstance(exc, STOP_ERRORS):
                    self.halt(exc)
            finally:
                self._inflight.discard(scope)  # pragma: no mutate (hygiene)
        if scope.cancelled_caught:
            status = SendStatus.UNKNOWN
            error = SendInterruptedError(
                f"cancelled with the request in flight for more than {self._grace:g} s",
                method=self._endpoint.method,
                path=self._endpoint.path,
            )
        if error is not None:
            _without_traceback(error)
        return SendResult(index=index, openid=openid, status=status, error=error)

    async def _request(self, openid: str, body: bytes, state: MediaState | None) -> None:
        """Send one body; a refused uploaded media (40007) is uploaded again, sent once more."""
        try:
            await self._pipeline.call(self._endpoint, content=body)
        except InvalidMediaIdError as refused:
            if state is None:
                raise
            try:
                body = await self._body.rebuilt(openid, state)
            except WeChatError as failed:  # the re-upload failed: still refused, never sent
                raise refused from failed
            await self._pipeline.call(self._endpoint, content=body)

    async def _unreserve(self, reservation: Reservation | None) -> None:
        if reservation is not None:
            await self._ledger.release(reservation)

    def _log_factory_failure(self, exc: WeChatError) -> None:
        if isinstance(exc, MessageBuildError) and not self._factory_logged:
            self._factory_logged = True
            logger.warning(
                "bulk send: the message callable failed (first failure shown; each such "
                "recipient is reported failed)",
                exc_info=exc,
            )

    async def _skip_rest(self, reason: WeChatError) -> None:
        """Report every recipient not read yet as ``skipped`` (after a stop)."""
        while self._drain:  # until abandoned: nobody wants the rest any more
            item = (
                self._pull_sync()
                if self._iterator is not None
                else (await self._pull_async(draining=True))
            )
            if isinstance(item, _End):
                return
            index = self._next_index
            self._next_index = index + 1
            result = SendResult(index=index, openid=item, status=SendStatus.SKIPPED, error=reason)
            self._record(result)
            if self._deliver is not None:
                await self._deliver(result)


# --------------------------------------------------------------------------- entry points


async def send_many(
    pipeline: Pipeline,
    endpoint: Endpoint,
    recipients: Recipients,
    message: Message | MessageFactory,
    *,
    kf_account: str | None,
    ai_generated: bool,
    max_concurrency: int,
    rate: float | RateLimiter | None,
    control: SendControl | None,
    media: MediaAPI,
    ledger: WindowLedger,
    skip_unreachable: bool,
) -> SendReport:
    """Run a bulk send to the end and return its report (see :meth:`MessageAPI.send_many`).

    The engine's entry point: :class:`MessageAPI` passes every option (the defaults are its).
    """
    run = _Run(
        pipeline,
        endpoint,
        recipients,
        message,
        kf_account=kf_account,
        ai_generated=ai_generated,
        max_concurrency=max_concurrency,
        rate=rate,
        collect=True,
        media=media,
        ledger=ledger,
        skip_unreachable=skip_unreachable,
    )
    if control is not None:
        control._attach(run)
    try:
        await run.execute()
    finally:  # a cancelled or failed run leaves its partial report on the control too
        report = run.report()
        if control is not None:
            control.report = report
    return report


class SendStream:
    """The results of a streaming bulk send, as they happen (:meth:`MessageAPI.stream_many`).

    Use it as ``async with wx.message.stream_many(...) as results: async for result in
    results: ...``. The sends run while you read; a slow reader slows them down (a small
    buffer, then the workers wait), so memory stays flat whatever the number of recipients.
    Results come in completion order: ``result.index`` is the recipient's position in the input.

    Leaving the ``async with`` block before the end (``break``, an exception, a cancellation)
    stops new sends, lets those in flight finish and does not read the rest of the recipients
    (``summary.complete`` is then ``False``). Every result you did not read is then on
    :attr:`unread`: those waiting in the buffer and those that ended after you left, ``sent``
    ones included, so nobody is sent the message without your knowing. Recipients never read
    from ``recipients`` have no result at all; a recipient a worker held but had not sent to
    yet (building its message, waiting for the rate) is in :attr:`unread` as ``skipped``. What
    you read plus :attr:`unread` is every result: ``summary.total`` of them.

    :meth:`stop` instead stops new sends but still reports every remaining recipient,
    ``skipped``, through the iteration. If reading the recipients raises, the iteration
    re-raises it.
    """

    def __init__(self, run: _Run, *, buffer: int) -> None:
        self._run = run
        self._buffer = buffer
        self._receive: MemoryObjectReceiveStream[SendResult] | None = None
        self._context: AbstractAsyncContextManager[SendStream] | None = None
        self._finished = False
        self._left = False
        self._error: BaseException | None = None

    @property
    def summary(self) -> SendSummary:
        """The counts so far; final once the ``async with`` block is left."""
        return self._run.summary()

    @property
    def unread(self) -> tuple[SendResult, ...]:
        """The results the reader never got, in completion order; final once the block is left.

        Empty while the ``async with`` block runs and when the iteration was read to its end.
        When the block is left early, it holds the results that were waiting in the buffer and
        those that ended afterwards (requests in flight, recipients held by a worker, which are
        ``skipped``): at most the buffer (two per worker) plus one per worker, so
        ``3 * max_concurrency``. Store them as you store the ones you read: their recipients
        may have been sent the message.
        """
        return self._run.unread() if self._left else ()

    def stop(self) -> None:
        """Start no new sends; those in flight finish and the rest arrive as ``skipped``.

        Workers waiting for the rate limiter stop waiting at once (their recipients: ``skipped``).
        """
        self._run.halt(SendCancelledError("the bulk send was stopped"))

    async def __aenter__(self) -> Self:
        if self._context is not None:
            raise RuntimeError("a SendStream can be entered once")
        self._context = self._open()
        await self._context.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._context is not None
        try:
            return await self._context.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            # The task group wraps what the body raised in an exception group: hand the
            # caller's own exception back as it was raised.
            if exc is not None and getattr(raised, "exceptions", None) == (exc,):
                raise exc.with_traceback(tb) from exc.__cause__
            raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SendResult:
        if self._receive is None:
            raise TypeError(
                "read a SendStream inside its context: "
                "async with wx.message.stream_many(...) as results: async for r in results"
            )
        try:
            try:
                result = self._receive.receive_nowait()
            except anyio.WouldBlock:
                result = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._error is not None:
                error, self._error = self._error, None
                raise error from None
            raise StopAsyncIteration from None
        self._run.handed(result)
        return result

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[SendStream]:
        send, receive = anyio.create_memory_object_stream[SendResult](self._buffer)
        self._receive = receive

        async def deliver(result: SendResult) -> None:
            # The run keeps every result until the reader has it: one the reader never gets
            # (it left; the send was cancelled) ends up in ``unread``. No checkpoint while the
            # buffer has room: the worker's next request yields to the event loop anyway.
            if self._left:
                return
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                try:
                    send.send_nowait(result)
                except anyio.WouldBlock:
                    await send.send(result)

        async def produce() -> None:
            async with send:
                try:
                    await self._run.execute(deliver)
                except Exception as exc:  # the recipients iterable failed
                    self._error = exc
                self._finished = True

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            try:
                yield self
            finally:
                self._left = True
                if not self._finished:
                    self._run.abandon(SendCancelledError("the reader left the stream"))
                receive.close()


def stream_many(
    pipeline: Pipeline,
    endpoint: Endpoint,
    recipients: Recipients,
    message: Message | MessageFactory,
    *,
    kf_account: str | None,
    ai_generated: bool,
    max_concurrency: int,
    rate: float | RateLimiter | None,
    media: MediaAPI,
    ledger: WindowLedger,
    skip_unreachable: bool,
) -> SendStream:
    """A bulk send whose results stream out (see :meth:`MessageAPI.stream_many`).

    The engine's entry point: :class:`MessageAPI` passes every option (the defaults are its).
    """
    run = _Run(
        pipeline,
        endpoint,
        recipients,
        message,
        kf_account=kf_account,
        ai_generated=ai_generated,
        max_concurrency=max_concurrency,
        rate=rate,
        collect=False,
        media=media,
        ledger=ledger,
        skip_unreachable=skip_unreachable,
    )
    return SendStream(run, buffer=max_concurrency * _defaults.BULK_STREAM_BUFFER_PER_WORKER)
