"""Duplicate detection: WeChat retries a push 3 times when no answer came within 5 s.

:class:`Deduplicator` turns a push into its key (:func:`dedupe_key`) and keeps it in a
:class:`DuplicateStore`, where it is in one of two states (a :class:`DuplicateEntry`):

* ``"in_progress"``: claimed by a try that is running ``on_message`` on it, for a short,
  bounded time (``in_progress_ttl``, 30 s). A retry meanwhile must be neither processed again
  nor acknowledged (the first try may still fail): it waits for the first try's outcome;
* ``"done"``: handled, with the exact response body the first try answered (``reply``),
  remembered for ``ttl`` (300 s): every retry is answered with the same bytes, so that a reply
  is not lost when WeChat gave up waiting for the first answer.

A failed try releases its key, so that a retry processes the push. The three store
operations each are one atomic step::

    claim(key, ttl)        absent -> "in_progress" (returns None), else returns the entry
    mark_done(key, reply)  -> "done" with the reply, whatever it held
    forget(key)            -> absent

The transitions, all in :meth:`Deduplicator.claim` and the endpoint that calls it::

    (absent) --claim--> in_progress --mark_done(reply)--> done --ttl--> (absent)
                             |  \\--forget (on_message failed)--> (absent)
                             \\--in_progress_ttl (the worker died)--> (absent)

The stores follow the SDK's one store convention (``wechat_kf._stores``): memory by default
(:class:`MemoryDuplicateStore`, on ``ExpiringMap``), Redis shared
(:class:`~wechat_kf.callback.RedisDuplicateStore`, on ``RedisStore``). Any store can be checked
with ``wechat_kf.testing.duplicate_store_contract``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Literal, Protocol, TypeAlias

import anyio
import attrs

from wechat_kf._errors import ValidationError
from wechat_kf._stores import ExpiringMap
from wechat_kf.callback._clock import Clock, SystemClock, within
from wechat_kf.callback._defaults import (
    DEDUPE_IN_PROGRESS_TTL,
    DEDUPE_MAX_ENTRIES,
    DEDUPE_NAMESPACE,
    DEDUPE_POLL_INITIAL,
    DEDUPE_POLL_MAX,
    DEDUPE_TTL,
)
from wechat_kf.callback._messages import Event, Incoming, UserMessage

__all__ = [
    "IN_PROGRESS",
    "Deduplicator",
    "DuplicateEntry",
    "DuplicateState",
    "DuplicateStore",
    "MemoryDuplicateStore",
    "dedupe_key",
]

#: The state of a push key in a :class:`DuplicateStore`: being handled, or handled.
DuplicateState: TypeAlias = Literal["in_progress", "done"]


@attrs.frozen
class DuplicateEntry:
    """What a :class:`DuplicateStore` holds for a push key.

    ``state`` is ``"in_progress"`` or ``"done"``; ``reply`` is, once done, the exact response
    body the push was answered with (``b"success"`` or the reply's XML, encrypted when the push
    was), to answer its retries with. Always ``b""`` while in progress.
    """

    state: DuplicateState
    reply: bytes = b""

    @property
    def done(self) -> bool:
        """Whether the push was handled (:attr:`reply` is its answer)."""
        return self.state == "done"


#: The entry of a push being handled.
IN_PROGRESS: Final = DuplicateEntry("in_progress")


class DuplicateStore(Protocol):
    """Where push keys live, each ``"in_progress"`` or ``"done"`` with its reply.

    Each method is one atomic step in the backend. Check an implementation with
    ``wechat_kf.testing.duplicate_store_contract.DuplicateStoreContract``. The Redis store
    (:class:`~wechat_kf.callback.RedisDuplicateStore`) claims with a Lua script (``GET``, and
    ``SET key in_progress PX ttl`` when absent), marks done with ``SET key done:<reply> PX``
    and forgets with ``DEL``.
    """

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        """Claim ``key``: mark it in progress for ``ttl`` seconds unless it holds an entry.

        Return ``None`` when this call claimed it, else the entry it holds (the same
        ``reply`` bytes :meth:`mark_done` stored). One atomic step: of concurrent calls with
        the same key, exactly one returns ``None``. A key holding an entry keeps it and its
        expiry (a retry must not extend a claim).
        """

    async def mark_done(self, key: str, reply: bytes, ttl: float) -> None:
        """Mark ``key`` done with ``reply`` for ``ttl`` seconds from now, whatever it held.

        Called once ``on_message`` and its reply succeeded; replaces the in-progress expiry.
        ``reply`` is the response body: UTF-8 (XML, or ``b"success"``), at most a few KiB.
        """

    async def forget(self, key: str) -> None:
        """Remove ``key`` (handling failed: let a retry through). No error if absent."""


class MemoryDuplicateStore:
    """An in-process :class:`DuplicateStore`: bounded, expiring, safe across tasks and threads.

    At most ``max_entries`` keys are kept; beyond that the oldest are dropped first (an early
    drop can only let a late retry through, never refuse a new push). Expired keys are swept
    as new ones arrive; ``clock`` (seconds, ``time.monotonic``) can be replaced in tests. Fits
    a single process; with several workers use a shared store (Redis).
    """

    def __init__(
        self,
        *,
        max_entries: int = DEDUPE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: ExpiringMap[str, DuplicateEntry] = ExpiringMap(
            max_entries=max_entries, clock=clock
        )

    def __len__(self) -> int:
        return len(self._entries)

    async def claim(self, key: str, ttl: float) -> DuplicateEntry | None:
        """Claim ``key`` for ``ttl`` seconds; ``None`` if claimed now, else its entry."""
        return self._entries.setdefault(key, IN_PROGRESS, ttl)

    async def mark_done(self, key: str, reply: bytes, ttl: float) -> None:
        """Mark ``key`` done with ``reply`` for ``ttl`` seconds from now."""
        self._entries.set(key, DuplicateEntry("done", bytes(reply)), ttl)

    async def forget(self, key: str) -> None:
        """Remove ``key``."""
        self._entries.pop(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._entries)} keys)"


def dedupe_key(incoming: Incoming) -> str:
    """The key identifying a push and its retries.

    WeChat's advice: ``MsgId`` for messages, ``FromUserName`` + ``CreateTime`` for events and
    for the messages that come without a ``MsgId``. The account (``ToUserName``) is included
    so one store can serve several accounts, and the event (or message) type so two different
    pushes of one user in the same second stay distinct.
    """
    if isinstance(incoming, UserMessage):
        msg_id = "" if incoming.msg_id is None else str(incoming.msg_id)
    else:
        msg_id = incoming.raw.get("MsgId", "").strip()
    if msg_id:
        return f"{incoming.to_user}:msg:{msg_id}"
    create_time = incoming.raw["CreateTime"].strip()  # every push model requires it
    kind = incoming.event if isinstance(incoming, Event) else incoming.msg_type
    return f"{incoming.to_user}:{incoming.from_user}:{create_time}:{kind}"


def _seconds(field: str, value: float) -> float:
    if isinstance(value, bool) or not (
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    ):
        raise ValidationError(field, "must be a positive number of seconds", value)
    return float(value)


class Deduplicator:
    """Tell a new push from a retry, and answer a retry as its first try was answered.

    ``store`` defaults to a :class:`MemoryDuplicateStore`. ``ttl`` is how long a handled push
    and its reply are remembered, ``in_progress_ttl`` how long a push being handled stays
    claimed (bounded: a worker that crashed mid-push blocks its retries for that long at most),
    both in seconds; ``namespace`` prefixes every key in the store.

    A retry of a push being handled waits for its outcome (:meth:`claim` with ``wait``): woken
    at once when this deduplicator's own try finishes, re-reading the store every
    ``DEDUPE_POLL_INITIAL`` to ``DEDUPE_POLL_MAX`` seconds when another worker handles it.
    Those waits are measured and made on ``clock`` (a :class:`~wechat_kf.callback.Clock`, the
    real one by default; the endpoint gives its own): tests pass a
    :class:`wechat_kf.testing.VirtualClock`.
    """

    def __init__(
        self,
        store: DuplicateStore | None = None,
        *,
        ttl: float = DEDUPE_TTL,
        in_progress_ttl: float = DEDUPE_IN_PROGRESS_TTL,
        namespace: str = DEDUPE_NAMESPACE,
        clock: Clock | None = None,
    ) -> None:
        #: Seconds a handled push and its reply are remembered.
        self.ttl: float = _seconds("ttl", ttl)
        #: Seconds a push being handled stays claimed.
        self.in_progress_ttl: float = _seconds("in_progress_ttl", in_progress_ttl)
        #: Where the push keys live.
        self.store: DuplicateStore = store if store is not None else MemoryDuplicateStore()
        #: Prefix of every key in the store.
        self.namespace: str = namespace
        #: The clock the waits of a retry are measured and made on.
        self.clock: Clock = clock if clock is not None else SystemClock()
        # The pushes this deduplicator claimed: [the claiming thread, the event that wakes the
        # retries waiting for it in that thread (made by the first one)].
        self._handling: dict[str, list[Any]] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(store={self.store!r}, ttl={self.ttl:g}, "
            f"in_progress_ttl={self.in_progress_ttl:g})"
        )

    def key(self, incoming: Incoming) -> str:
        """The store key of ``incoming``: :attr:`namespace` + :func:`dedupe_key`."""
        return self.namespace + dedupe_key(incoming)

    async def claim(self, incoming: Incoming, *, wait: float = 0.0) -> DuplicateEntry | None:
        """Claim ``incoming`` for processing: ``None`` if it is yours (now in progress).

        Otherwise its entry: done (answer its ``reply``), or in progress (another try is still
        handling it: neither process nor acknowledge it). An in-progress push is waited for up
        to ``wait`` seconds: if that try finishes meanwhile its entry is returned, done; if it
        fails (releases the push), this call claims it and returns ``None``. Only the waits
        between store reads are bounded by ``wait``, never a store operation itself (a store
        call cut short could claim a key nobody would handle). A claim that returns ``None``
        must be followed by :meth:`mark_done` or :meth:`forget`, as the endpoint does.
        """
        key = self.key(incoming)
        deadline = self.clock.now() + wait
        delay = DEDUPE_POLL_INITIAL
        while True:
            entry = await self.store.claim(key, self.in_progress_ttl)
            if entry is None:
                self._handling[key] = [threading.get_ident(), None]
                return None
            if entry.done:
                return entry
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return entry
            handling = self._handling.get(key)
            if handling is not None and handling[0] == threading.get_ident():
                if handling[1] is None:
                    handling[1] = anyio.Event()
                await within(self.clock, remaining, handling[1].wait)
            else:
                await self.clock.sleep(min(delay, remaining))
                delay = min(delay * 2, DEDUPE_POLL_MAX)

    async def mark_done(self, incoming: Incoming, reply: bytes) -> None:
        """Record that ``incoming`` was answered with ``reply``: its retries get the same bytes.

        Shielded from cancellation (when the store does I/O), like :meth:`forget`; wakes the
        retries waiting here.
        """
        key = self.key(incoming)
        try:
            await self._update(self.store.mark_done(key, reply, self.ttl))
        finally:
            self._finished(key)

    async def forget(self, incoming: Incoming) -> None:
        """Release ``incoming`` so that a retry processes it (handling failed).

        Shielded from cancellation (when the store does I/O): a cancelled handler still
        releases its key.
        """
        key = self.key(incoming)
        try:
            await self._update(self.store.forget(key))
        finally:
            self._finished(key)

    async def _update(self, step: Awaitable[None]) -> None:
        # The memory store's operations never suspend, so nothing can interrupt them (and a
        # cancel scope costs more than the update); any other store's are shielded.
        if type(self.store) is MemoryDuplicateStore:  # pragma: no mutate (a shield is no harm)
            await step
            return
        with anyio.CancelScope(shield=True):
            await step

    def _finished(self, key: str) -> None:
        handling = self._handling.pop(key, None)
        if handling is not None and handling[1] is not None:
            handling[1].set()
