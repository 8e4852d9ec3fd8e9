"""Where the service-window ledger keeps each user's windows: the store contract and its records.

A :class:`WindowStore` holds one :class:`WindowRecord` per ``(appid, openid)``: the user's
windows (one per rule name, each with its opening time, end and messages left), and the last
correction WeChat made (45015 / 45047). It follows the SDK's one store convention
(``wechat_kf._stores``): this protocol; :class:`MemoryWindowStore`, the default; a Redis store
(:class:`~wechat_kf.RedisWindowStore`, extra ``wechat_kf[redis]``) shared by every process; and
the contract suite ``wechat_kf.testing.window_store_contract`` any implementation can run.

Every method is one atomic step in the backend. The rules (which window, how many messages, for
how long) are the ledger's business; the store only keeps what it is told and applies four
record-level operations, specified once here by :class:`WindowRecord`'s methods (the Redis
store's Lua scripts do the same):

* **open**: store a window unless the record holds one of that name opened later, or opened at
  the same time by the same interaction (``ref``): a repeated push changes nothing;
* **spend**: take one message from the open window that ends first (on a tie, the first by
  name) with messages left; with ``reserve`` only if there is one, else report the record;
* **refund**: give back a reserved message whose send never happened, to the same opening;
* **correct**: WeChat said 45015 (drop the windows opened before the send) or 45047 (their
  messages are used up).

Times are Unix seconds from the ledger's clock (passed in, never read here), so a test clock
works for every store. A record is kept ``memory`` seconds past its last window's end (or the
last correction) and then forgotten: the user is unknown again.
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

import attrs

from wechat_kf import _defaults
from wechat_kf._errors import WindowStoreError
from wechat_kf._stores import Clock, ExpiringMap

__all__ = [
    "MemoryWindowStore",
    "Spend",
    "SpendOutcome",
    "StoredWindow",
    "WindowRecord",
    "WindowStore",
    "WindowStoreError",
]

#: The errcodes that correct a record: no window open, messages used up.
OUTSIDE_WINDOW = 45015
NO_MESSAGES_LEFT = 45047


@attrs.frozen(kw_only=True)
class StoredWindow:
    """One window of a user as a store keeps it (times in Unix seconds).

    ``ref`` identifies the interaction that opened it (a push's ``MsgId``, an event's type and
    key): the same interaction recorded twice opens the window once.
    """

    window: str
    opened_at: float
    until: float
    left: int
    ref: str = ""

    def is_open(self, now: float) -> bool:
        """Whether the window has not ended at ``now`` (messages aside)."""
        return now < self.until


def _order(window: StoredWindow) -> tuple[float, str]:
    return (window.until, window.window)


@attrs.frozen(kw_only=True)
class WindowRecord:
    """What a store knows of one user: windows, the last correction, and until when to keep it.

    ``windows`` holds at most one window per name, ended ones included. ``checked_at`` and
    ``errcode`` are the time and code (45015 or 45047) of WeChat's last correction, if any.
    ``keep_until`` is when the store forgets the record (then the user is unknown).
    """

    windows: tuple[StoredWindow, ...] = ()
    checked_at: float | None = None
    errcode: int | None = None
    keep_until: float = 0.0

    def open_windows(self, now: float) -> tuple[StoredWindow, ...]:
        """The windows open at ``now``, the one ending first first (ties: by name)."""
        return tuple(sorted((w for w in self.windows if w.is_open(now)), key=_order))

    def chargeable(self, now: float) -> StoredWindow | None:
        """The window a send at ``now`` spends from: open, with messages left, ending first."""
        for window in self.open_windows(now):
            if window.left > 0:
                return window
        return None

    @property
    def horizon(self) -> float:
        """The latest moment the record says anything about: its last window end or check."""
        ends = [w.until for w in self.windows]
        if self.checked_at is not None:
            ends.append(self.checked_at)
        return max(ends, default=0.0)

    def window(self, name: str) -> StoredWindow | None:
        """The stored window called ``name``, or ``None``."""
        for window in self.windows:
            if window.window == name:
                return window
        return None

    def _kept(self, windows: tuple[StoredWindow, ...], memory: float) -> WindowRecord:
        """The record with ``windows``, kept ``memory`` seconds past its new horizon."""
        record = attrs.evolve(self, windows=tuple(sorted(windows, key=_order)))
        return attrs.evolve(record, keep_until=max(self.keep_until, record.horizon + memory))

    # ------------------------------------------------------------------ the four operations

    def opened(self, window: StoredWindow, memory: float) -> WindowRecord | None:
        """The record with ``window`` stored, or ``None`` if it changes nothing (see module)."""
        current = self.window(window.window)
        if current is not None and (
            window.opened_at < current.opened_at
            or (window.opened_at == current.opened_at and window.ref == current.ref)
        ):
            return None
        others = tuple(w for w in self.windows if w.window != window.window)
        return self._kept((*others, window), memory)

    def charged(self, now: float) -> tuple[WindowRecord, StoredWindow] | None:
        """The record after one message spent at ``now``, and the window it came from."""
        window = self.chargeable(now)
        if window is None:
            return None
        spent = attrs.evolve(window, left=window.left - 1)
        others = tuple(w for w in self.windows if w.window != window.window)
        return attrs.evolve(self, windows=tuple(sorted((*others, spent), key=_order))), spent

    def refunded(self, name: str, opened_at: float) -> WindowRecord | None:
        """The record with one message given back to window ``name`` if it is still that
        opening (``opened_at``); ``None`` if it was renewed or dropped meanwhile."""
        current = self.window(name)
        if current is None or current.opened_at != opened_at:
            return None
        back = attrs.evolve(current, left=current.left + 1)
        others = tuple(w for w in self.windows if w.window != name)
        return attrs.evolve(self, windows=tuple(sorted((*others, back), key=_order)))

    def corrected(self, errcode: int, *, before: float, now: float, memory: float) -> WindowRecord:
        """The record after WeChat answered ``errcode`` to a send that started at ``before``.

        45015: no window was open, so the windows opened up to ``before`` are dropped; 45047:
        their messages are used up. Windows opened later (an interaction while the send was in
        flight) are kept.
        """
        if errcode == OUTSIDE_WINDOW:
            windows = tuple(w for w in self.windows if w.opened_at > before)
        else:
            windows = tuple(
                w if w.opened_at > before else attrs.evolve(w, left=0) for w in self.windows
            )
        checked = attrs.evolve(self, checked_at=now, errcode=errcode)
        return checked._kept(windows, memory)


class SpendOutcome(str, enum.Enum):
    """What :meth:`WindowStore.spend` did."""

    #: One message was taken from :attr:`Spend.window`.
    CHARGED = "charged"
    #: The store knows nothing of the user.
    UNKNOWN = "unknown"
    #: ``reserve``: the record has no open window with messages left (:attr:`Spend.record`).
    EXHAUSTED = "exhausted"
    #: Not ``reserve`` (WeChat accepted a send) although the record had nothing left: the
    #: ledger missed an interaction, so the record was dropped (the user is unknown now).
    FORGOTTEN = "forgotten"


@attrs.frozen(kw_only=True)
class Spend:
    """The outcome of :meth:`WindowStore.spend`: the window charged (after the charge), or the
    record that has nothing left."""

    outcome: SpendOutcome
    window: StoredWindow | None = None
    record: WindowRecord | None = None


@runtime_checkable
class WindowStore(Protocol):
    """Where the window ledger keeps users' windows; every method one atomic step.

    ``now`` and ``memory`` come from the ledger; ``appid`` scopes everything (one store can
    serve several accounts). A record whose ``keep_until`` is past ``now`` counts as absent.
    Run ``wechat_kf.testing.window_store_contract.WindowStoreContract`` against yours.
    """

    async def get(self, appid: str, openid: str, *, now: float) -> WindowRecord | None:
        """The user's record, or ``None`` if unknown (or forgotten by ``now``)."""

    async def open(self, appid: str, openid: str, window: StoredWindow, *, memory: float) -> bool:
        """Store ``window`` (:meth:`WindowRecord.opened`); whether it changed anything."""

    async def spend(self, appid: str, openid: str, *, now: float, reserve: bool) -> Spend:
        """Take one message (:meth:`WindowRecord.charged`), atomically.

        ``reserve`` (before a send): only from a window with messages left; nothing left is
        :attr:`SpendOutcome.EXHAUSTED` with the record. Not ``reserve`` (WeChat accepted a
        send): nothing left drops the record (:attr:`SpendOutcome.FORGOTTEN`). An unknown user
        is :attr:`SpendOutcome.UNKNOWN` and stays unknown.
        """

    async def refund(self, appid: str, openid: str, *, window: str, opened_at: float) -> bool:
        """Give back a reserved message (:meth:`WindowRecord.refunded`); whether it did."""

    async def correct(
        self, appid: str, openid: str, *, errcode: int, before: float, now: float, memory: float
    ) -> None:
        """Apply WeChat's 45015 / 45047 (:meth:`WindowRecord.corrected`); creates the record of
        an unknown user (so that the ledger knows them from now on)."""

    async def forget(self, appid: str, openid: str) -> None:
        """Drop the user's record. No error if absent."""

    def records(self, appid: str, *, now: float) -> AsyncIterator[tuple[str, WindowRecord]]:
        """Every record of ``appid`` alive at ``now``, streamed (never all loaded at once).

        Each user present for the whole iteration is yielded exactly once; one added or
        removed meanwhile may or may not be.
        """


class MemoryWindowStore:
    """The default window store: in this process, bounded, thread-safe.

    At most ``max_entries`` users are kept; beyond that the one written longest ago is dropped
    first (it becomes unknown: sent as usual, never wrongly skipped). With several worker
    processes use a shared store (:class:`~wechat_kf.RedisWindowStore`), or each process only
    knows the pushes and sends it handled itself.
    """

    def __init__(
        self, *, max_entries: int = _defaults.WINDOW_MAX_ENTRIES, clock: Clock = time.monotonic
    ) -> None:
        self._records: ExpiringMap[tuple[str, str], WindowRecord] = ExpiringMap(
            max_entries=max_entries, clock=clock
        )

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._records)} users)"

    def _live(self, key: tuple[str, str], now: float) -> WindowRecord | None:
        record = self._records.get_locked(key, self._records.now())
        if record is None or record.keep_until <= now:
            return None
        return record

    def _put(self, key: tuple[str, str], record: WindowRecord, now: float) -> None:
        # The map expires entries on its own (monotonic) clock: give it the record's lifetime.
        ttl = max(record.keep_until - now, 0.0)
        self._records.set_locked(key, record, self._records.now() + ttl)

    async def get(self, appid: str, openid: str, *, now: float) -> WindowRecord | None:
        """The user's record, or ``None``."""
        with self._records.lock:
            return self._live((appid, openid), now)

    async def open(self, appid: str, openid: str, window: StoredWindow, *, memory: float) -> bool:
        """Store ``window`` unless a later (or the same) opening is stored."""
        key = (appid, openid)
        with self._records.lock:
            current = self._live(key, window.opened_at) or WindowRecord()
            record = current.opened(window, memory)
            if record is None:
                return False
            self._put(key, record, window.opened_at)
            return True

    async def spend(self, appid: str, openid: str, *, now: float, reserve: bool) -> Spend:
        """Take one message from the window ending first that has messages left."""
        key = (appid, openid)
        with self._records.lock:
            current = self._live(key, now)
            if current is None:
                return Spend(outcome=SpendOutcome.UNKNOWN)
            charged = current.charged(now)
            if charged is not None:
                record, window = charged
                self._put(key, record, now)
                return Spend(outcome=SpendOutcome.CHARGED, window=window)
            if reserve:
                return Spend(outcome=SpendOutcome.EXHAUSTED, record=current)
            self._records.pop_locked(key, self._records.now())
            return Spend(outcome=SpendOutcome.FORGOTTEN)

    async def refund(self, appid: str, openid: str, *, window: str, opened_at: float) -> bool:
        """Give back a reserved message to the same opening of ``window``."""
        key = (appid, openid)
        with self._records.lock:
            current = self._records.get_locked(key, self._records.now())
            record = None if current is None else current.refunded(window, opened_at)
            if record is None:
                return False
            self._records.set_locked(key, record, self._records.expiry_locked(key))
            return True

    async def correct(
        self, appid: str, openid: str, *, errcode: int, before: float, now: float, memory: float
    ) -> None:
        """Apply WeChat's 45015 / 45047 to the user's record (creating it if needed)."""
        key = (appid, openid)
        with self._records.lock:
            current = self._live(key, now) or WindowRecord()
            record = current.corrected(errcode, before=before, now=now, memory=memory)
            self._put(key, record, now)

    async def forget(self, appid: str, openid: str) -> None:
        """Drop the user's record."""
        self._records.pop((appid, openid))

    async def records(self, appid: str, *, now: float) -> AsyncIterator[tuple[str, WindowRecord]]:
        """Every live record of ``appid`` (a snapshot taken when the iteration starts)."""
        for (scope, openid), record in self._records.items():
            if scope == appid and record.keep_until > now:
                yield openid, record
