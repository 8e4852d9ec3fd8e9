"""The service-window ledger: who can be messaged now, how many times, until when.

One :class:`WindowLedger` per :class:`~wechat_kf.AsyncWeChat` (shared by its ``with_options``
copies, like the token manager), on a :class:`~wechat_kf.WindowStore`. It learns from both
halves of WeChat's rule (:data:`~wechat_kf.WINDOW_RULES`):

* **interactions** open windows: the pushes that pass the callback endpoint
  (:meth:`observe`), or :meth:`opened` by hand for pushes that enter elsewhere. A window opens
  at the push's ``CreateTime`` (never later than now), and a push seen twice opens it once;
* **sends** spend them, in one place: :meth:`send` wraps every customer-service send of
  ``wx.message.send`` and the bulk engine, spends a message once WeChat accepted it, and
  corrects the record from WeChat's 45015 (no window open) or 45047 (messages used up), so a
  wrong prediction is never repeated. A send WeChat accepted although the ledger saw nothing
  left means it missed an interaction: the user becomes unknown again.

With ``skip_unreachable`` a bulk send first :meth:`reserve`\\ s the message (atomic in the
store: concurrent senders never spend more than the window has) and skips users the ledger
knows cannot be reached (:class:`~wechat_kf.UnreachableError`). A user it knows nothing about
is sent to as usual: unknown is not unreachable. A reserved message whose send never happened
is given back; one whose outcome is unknown (may have reached WeChat) stays spent.

A failing store never fails a send: the ledger logs it (at most once a minute) and the send goes
ahead as for an unknown user.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Final, TypeVar

import anyio
import attrs

from wechat_kf import _defaults
from wechat_kf import _validation as check
from wechat_kf._errors import APIError, UnreachableError, ValidationError, WeChatError
from wechat_kf._redaction import get_logger
from wechat_kf._window_rules import WINDOW_RULES, Interaction, WindowRule, interaction_of, rule_for
from wechat_kf._window_store import (
    NO_MESSAGES_LEFT,
    OUTSIDE_WINDOW,
    SpendOutcome,
    StoredWindow,
    WindowRecord,
    WindowStore,
)

if TYPE_CHECKING:
    from wechat_kf.callback._messages import Incoming

__all__ = ["OpenWindow", "Reservation", "WindowLedger", "WindowStatus"]

T = TypeVar("T")

logger = get_logger("wechat_kf")

#: Unix seconds the ledger reads the time from.
WallClock = Callable[[], float]


def _aware(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


@attrs.frozen(kw_only=True)
class OpenWindow:
    """One open service window of a user: which, since and until when, messages left."""

    window: str
    opened_at: datetime
    until: datetime
    messages_left: int


@attrs.frozen(kw_only=True)
class WindowStatus:
    """What the ledger knows of one user now (``wx.windows.get(openid)``).

    ``known`` is ``False`` when the ledger has no record of the user (no interaction seen, no
    send answered, or forgotten): :attr:`reachable` is then ``None``, and a send goes ahead as
    usual. ``windows`` are the windows open now, the one ending first first (its messages are
    spent first). ``last_ended`` is when the latest window that ended did; ``checked_at`` and
    ``errcode`` are WeChat's last correction (45015 / 45047), if any. Times are aware UTC.
    """

    openid: str
    known: bool
    windows: tuple[OpenWindow, ...] = ()
    last_ended: datetime | None = None
    checked_at: datetime | None = None
    errcode: int | None = None

    @property
    def reachable(self) -> bool | None:
        """Whether a message can be sent now; ``None`` when the user is unknown."""
        if not self.known:
            return None
        return any(w.messages_left > 0 for w in self.windows)

    @property
    def messages_left(self) -> int | None:
        """Messages that can still be sent in the open windows; ``None`` when unknown."""
        if not self.known:
            return None
        return sum(w.messages_left for w in self.windows)

    @property
    def until(self) -> datetime | None:
        """Reachable: when the last window with messages left ends. Out of messages: when the
        open windows end. Outside any window: when the last one ended (``None`` if unseen)."""
        with_messages = [w.until for w in self.windows if w.messages_left > 0]
        if with_messages:
            return max(with_messages)
        if self.windows:
            return max(w.until for w in self.windows)
        return self.last_ended

    @property
    def reason(self) -> str | None:
        """Why the user is unreachable: ``"outside_window"`` (WeChat would answer 45015) or
        ``"no_messages_left"`` (45047); ``None`` when reachable or unknown."""
        if self.reachable is not False:
            return None
        if self.windows or (self.last_ended is None and self.errcode == NO_MESSAGES_LEFT):
            return "no_messages_left"
        return "outside_window"


@attrs.frozen(kw_only=True)
class Reservation:
    """A message taken from a user's window before the send (``skip_unreachable``)."""

    openid: str
    window: str
    opened_at: float
    started: float


def status_of(openid: str, record: WindowRecord | None, now: float) -> WindowStatus:
    """The public answer for a stored record at ``now``."""
    if record is None:
        return WindowStatus(openid=openid, known=False)
    ended = [w.until for w in record.windows if not w.is_open(now)]
    return WindowStatus(
        openid=openid,
        known=True,
        windows=tuple(
            OpenWindow(
                window=w.window,
                opened_at=_aware(w.opened_at),
                until=_aware(w.until),
                messages_left=w.left,
            )
            for w in record.open_windows(now)
        ),
        last_ended=_aware(max(ended)) if ended else None,
        checked_at=None if record.checked_at is None else _aware(record.checked_at),
        errcode=record.errcode,
    )


#: What identifies a push without a ``MsgId`` (an event): its type, event and key.
_REF_FIELDS: Final = ("MsgType", "Event", "EventKey")


def _ref(raw: Mapping[str, str]) -> str:
    """What identifies a push: its ``MsgId``, else its type, event and key."""
    msg_id = raw.get("MsgId", "").strip()
    if msg_id:
        return msg_id
    return ":".join(raw.get(name, "") for name in _REF_FIELDS)  # pragma: no mutate (a join)


def _seconds(at: datetime | float | None, now: float) -> float:
    if at is None:
        return now
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValidationError("at", "must be an aware datetime (or Unix seconds)", at)
        seconds = at.timestamp()
    elif isinstance(at, int | float) and not isinstance(at, bool):
        seconds = float(at)
    else:
        raise ValidationError("at", "must be an aware datetime or Unix seconds", at)
    return min(seconds, now)  # a clock ahead of ours never stretches a window


class WindowLedger:
    """Users' service windows for one appid, kept in a :class:`~wechat_kf.WindowStore`.

    ``clock`` gives Unix seconds (tests pass the fake WeChat's clock); ``rules`` are
    :data:`~wechat_kf.WINDOW_RULES` unless WeChat changed them before this SDK did; ``memory``
    is how long a user stays known after their last window ended or WeChat's last correction.
    """

    def __init__(
        self,
        *,
        appid: str,
        store: WindowStore,
        clock: WallClock = time.time,
        rules: tuple[WindowRule, ...] = WINDOW_RULES,
        memory: float = _defaults.WINDOW_MEMORY,
    ) -> None:
        #: The account whose users these are (the store's scope).
        self.appid: str = appid
        #: Where the records live.
        self.store: WindowStore = store
        #: Unix seconds, now.
        self.clock: WallClock = clock
        #: The rules applied to interactions.
        self.rules: tuple[WindowRule, ...] = rules
        #: Seconds a user stays known after their last window ended or WeChat's last correction.
        self.memory: float = float(memory)
        self._next_log = 0.0  # pragma: no mutate (any moment past: the first failure is logged)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(appid={self.appid!r}, store={self.store!r})"

    # ------------------------------------------------------------------ learning

    async def opened(
        self,
        openid: str,
        *,
        kind: Interaction | str = Interaction.MESSAGE,
        at: datetime | float | None = None,
        ref: str = "",  # pragma: no mutate (any one ref: one interaction a second, by hand)
    ) -> bool:
        """Record an interaction of ``openid`` at ``at`` (default now); whether it opened or
        renewed a window. ``ref`` identifies it: the same interaction twice counts once."""
        check.openid(openid)
        try:
            interaction = Interaction(kind)
        except ValueError:
            raise ValidationError(
                "kind", f"must be one of {[k.value for k in Interaction]}", kind
            ) from None
        now = self.clock()
        opened_at = _seconds(at, now)
        rule = rule_for(interaction, self.rules)
        if rule is None:
            return False
        window = StoredWindow(
            window=rule.window,
            opened_at=opened_at,
            until=opened_at + rule.seconds,
            left=rule.messages,
            ref=ref,
        )
        return await self.store.open(self.appid, openid, window, memory=self.memory)

    async def observe(self, incoming: Incoming) -> bool:
        """Record a push (a parsed :class:`~wechat_kf.callback.Incoming`) if it opens a window:
        a user message or a qualifying event (see :data:`~wechat_kf.WINDOW_RULES`)."""
        raw = incoming.raw
        kind = interaction_of(raw)
        if kind is None:
            return False
        return await self.opened(
            incoming.from_user, kind=kind, at=incoming.create_time.timestamp(), ref=_ref(raw)
        )

    async def forget(self, openid: str) -> None:
        """Forget what the ledger knows of ``openid`` (unknown again)."""
        await self.store.forget(self.appid, check.openid(openid))

    # ------------------------------------------------------------------ answers

    async def status(self, openid: str) -> WindowStatus:
        """What the ledger knows of ``openid`` now."""
        now = self.clock()
        record = await self.store.get(self.appid, check.openid(openid), now=now)
        return status_of(openid, record, now)

    async def reachable(self) -> AsyncIterator[str]:
        """The openids reachable now (an open window with messages left), streamed."""
        async for openid, record in self.store.records(self.appid, now=self.clock()):
            if record.chargeable(self.clock()) is not None:
                yield openid

    # ------------------------------------------------------------------ sending

    async def reserve(self, openid: str) -> Reservation | None:
        """Take a message for a send to ``openid``; ``None`` if the ledger does not know them.

        Raises:
            UnreachableError: the ledger knows they are outside their window or out of
                messages (no request must be made).
        """
        now = self.clock()
        spend = await self._quietly(
            "check a window", self.store.spend(self.appid, openid, now=now, reserve=True)
        )
        if spend is None:
            return None
        if spend.outcome is SpendOutcome.CHARGED and spend.window is not None:
            window = spend.window
            return Reservation(
                openid=openid, window=window.window, opened_at=window.opened_at, started=now
            )
        if spend.outcome is SpendOutcome.EXHAUSTED:
            status = status_of(openid, spend.record, now)
            reason = status.reason or "outside_window"  # pragma: no mutate (never None here)
            raise UnreachableError(status.openid, reason, status.until)
        return None

    async def release(self, reservation: Reservation) -> None:
        """Give back a reserved message: its send never happened."""
        await self._quietly(
            "give back a reserved message",
            self.store.refund(
                self.appid,
                reservation.openid,
                window=reservation.window,
                opened_at=reservation.opened_at,
            ),
        )

    async def send(
        self,
        openid: str,
        call: Callable[[], Awaitable[T]],
        reservation: Reservation | None = None,
    ) -> T:
        """Run ``call`` (one customer-service send to ``openid``) and learn from its outcome.

        Accepted: one message is spent (unless ``reservation`` already took it). 45015 / 45047:
        the record is corrected. Any other error whose request never reached WeChat
        (``may_have_reached_wechat`` false) gives the reservation back; one that may have
        reached it keeps it spent. ``call``'s result or error is passed through as is.
        """
        started = self.clock() if reservation is None else reservation.started
        try:
            result = await call()
        except WeChatError as exc:
            if isinstance(exc, APIError) and exc.errcode in (OUTSIDE_WINDOW, NO_MESSAGES_LEFT):
                await self._quietly(
                    "correct a window",
                    self.store.correct(
                        self.appid,
                        openid,
                        errcode=exc.errcode,
                        before=started,
                        now=self.clock(),
                        memory=self.memory,
                    ),
                )
            elif reservation is not None and not exc.may_have_reached_wechat:
                await self.release(reservation)
            raise
        if reservation is None:
            await self._quietly(
                "record a send",
                self.store.spend(self.appid, openid, now=self.clock(), reserve=False),
            )
        return result

    async def _quietly(self, what: str, step: Awaitable[T]) -> T | None:
        """Run a store step for a send: shielded (it is bounded by the store's timeout), and
        its failure logged, never raised: the send itself matters more than the ledger."""
        with anyio.CancelScope(shield=True):
            try:
                return await step
            except Exception as exc:
                now = time.monotonic()
                if now >= self._next_log:  # pragma: no mutate (> is the same on a real clock)
                    self._next_log = now + _defaults.WINDOW_STORE_LOG_INTERVAL
                    logger.warning(
                        "window ledger: could not %s (the send goes ahead as for an unknown "
                        "user; this is logged at most once a minute): %s: %s",
                        what,
                        type(exc).__name__,
                        exc,
                    )
        return None
