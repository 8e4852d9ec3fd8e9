"""The CLI's side of a bulk send: ``wx.message.stream_many``, one outcome per recipient, Ctrl-C.

:func:`send_all` hands every recipient's outcome to a callback the moment it is known (the
results file of ``send-many`` writes it at once). Ctrl-C is handled in two steps:

1. The first Ctrl-C stops the bulk send cooperatively (``SendStream.stop()``): no new send
   starts, the requests in flight finish and their outcome is known; the recipients not
   attempted come back ``skipped``.
2. A second Ctrl-C abandons the requests in flight. Every recipient the SDK took but never gave
   an outcome for is then reported ``unknown``: the message may have reached the user, so a
   re-run never sends it again unless told to.

SIGTERM (``docker stop``, ``systemctl stop``) counts as a Ctrl-C. Every recipient handed to the
SDK gets exactly one outcome, whichever way the run ends, and ``on_taken`` hears of it first.
Once the run stops (Ctrl-C, or an error every further send would hit), the recipients not yet
handed over are not read at all: :attr:`BulkRun.not_attempted` counts them.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Sequence

import anyio
import attrs

from wechat_kf import AsyncWeChat, UnreachableError, WeChatError, _defaults
from wechat_kf.bulk import (
    SendCancelledError,
    SendInterruptedError,
    SendResult,
    SendStatus,
    SendStream,
)
from wechat_kf.cli._messages import Outbound
from wechat_kf.cli._output import describe_error
from wechat_kf.cli._results import UNKNOWN, Outcome

__all__ = ["INTERRUPTED_ERROR", "BulkRun", "not_attempted", "outcome_of", "send_all"]

#: The error recorded for a recipient whose send was abandoned in flight.
INTERRUPTED_ERROR = "interrupted before WeChat answered: the message may have reached the user"
#: What stopped a run that an interruption (or a cancellation) stopped.
CTRL_C = "Ctrl-C"
#: The reason of a recipient ``--only-reachable`` skipped, by the ledger's reason (one label
#: each, whatever the user's dates, so that the summary groups them).
UNREACHABLE: dict[str, str] = {
    "outside_window": "outside their service window (the window ledger knows it)",
    "no_messages_left": "no messages left in their service window (the window ledger knows it)",
}


def not_attempted(stopped_by: BaseException | None) -> str:
    """The reason of a recipient not attempted because the run stopped: one label per cause.

    ``None`` (or the SDK's :class:`SendCancelledError`) is Ctrl-C: the CLI stops or cancels a
    bulk send for nothing else.
    """
    if stopped_by is None or isinstance(stopped_by, SendCancelledError):
        return f"not attempted: stopped by {CTRL_C}"
    return f"not attempted: stopped by {describe_error(stopped_by)}"


@attrs.define
class BulkRun:
    """How a bulk send ended."""

    #: Ctrl-C stopped it (the first one gracefully, a second one abandoning the sends in flight).
    interrupted: bool = False
    #: The error that stopped it early (daily quota, configuration...): every further send
    #: would have failed the same way. ``None`` when it ran to the end or was interrupted.
    stopped_by: WeChatError | None = None
    #: Recipients never handed to the SDK because the run stopped first.
    not_attempted: int = 0


def outcome_of(result: SendResult) -> Outcome:
    """The results-file form of one SDK result (the error as its one-line description).

    A cause the CLI also reports itself gets the CLI's words, so that one cause has one label:
    a recipient the SDK skipped because the run stopped is :func:`not_attempted` like those
    never handed to it, one abandoned in flight is :data:`INTERRUPTED_ERROR`.
    """
    error = result.error
    if isinstance(error, UnreachableError):
        text: str | None = UNREACHABLE.get(error.reason, UNREACHABLE["outside_window"])
    elif result.status is SendStatus.SKIPPED:
        text = not_attempted(error)
    elif isinstance(error, SendInterruptedError):
        text = INTERRUPTED_ERROR
    else:
        text = None if error is None else describe_error(error)
    return Outcome(
        openid=result.openid, status=result.status.value, errcode=result.errcode, error=text
    )


async def send_all(
    wx: AsyncWeChat,
    openids: Sequence[str],
    outbound: Outbound,
    *,
    on_outcome: Callable[[Outcome], None],
    max_concurrency: int = _defaults.BULK_MAX_CONCURRENCY,
    rate: float | None = None,
    on_interrupt: Callable[[bool], None] | None = None,
    on_taken: Callable[[str], None] | None = None,
    skip_unreachable: bool = False,
) -> BulkRun:
    """Send ``outbound`` to every openid (each once: no repeats) via ``stream_many``.

    ``on_taken(openid)`` is called just before a recipient's request may leave, ``on_outcome``
    once per recipient as its outcome becomes known, ``on_interrupt(first)`` on each Ctrl-C
    (``first`` for the graceful one). ``skip_unreachable`` skips the users the client's
    window ledger knows cannot be reached.
    """
    taken: dict[str, None] = {}
    handed = 0

    def recipients() -> Iterator[str]:
        # stream_many reads a recipient only when a worker is free to send to it, so
        # "taken and no outcome yet" is exactly "maybe in flight".
        nonlocal handed
        for openid in openids:
            if run.interrupted or stream.summary.stopped_by is not None:
                return  # stopped: leave the rest unread (a re-run sends to them)
            taken[openid] = None
            if on_taken is not None:
                on_taken(openid)
            handed += 1
            yield openid

    run = BulkRun()
    stream = wx.message.stream_many(
        recipients(),
        outbound.message,
        kf_account=outbound.kf_account,
        ai_generated=outbound.ai_generated,
        max_concurrency=max_concurrency,
        rate=rate,
        skip_unreachable=skip_unreachable,
    )
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as sending:
            tg.start_soon(_watch_interrupts, stream, sending, run, on_interrupt)
            try:
                async with stream as results:
                    async for result in results:
                        taken.pop(result.openid, None)
                        on_outcome(outcome_of(result))
            finally:
                for openid in list(taken):
                    on_outcome(Outcome(openid=openid, status=UNKNOWN, error=INTERRUPTED_ERROR))
                taken.clear()
        tg.cancel_scope.cancel()
    stopped = stream.summary.stopped_by
    if stopped is not None and not isinstance(stopped, SendCancelledError):
        run.stopped_by = stopped
    run.not_attempted = len(openids) - handed
    return run


async def _watch_interrupts(
    stream: SendStream,
    sending: anyio.CancelScope,
    run: BulkRun,
    on_interrupt: Callable[[bool], None] | None,
) -> None:
    try:
        receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        signals = receiver.__enter__()
    except (NotImplementedError, ValueError, RuntimeError):
        return  # no signal handling here (Windows, not the main thread): Ctrl-C cancels
    try:
        async for _ in signals:
            first = not run.interrupted
            run.interrupted = True
            if on_interrupt is not None:
                on_interrupt(first)
            if first:
                stream.stop()
            else:
                sending.cancel()
    finally:
        receiver.__exit__(None, None, None)
