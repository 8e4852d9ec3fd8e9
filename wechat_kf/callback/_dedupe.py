"""Duplicate detection: WeChat retries a push 3 times when no answer came within 5 s.

:class:`Deduplicator` turns a push into its key (:func:`dedupe_key`) and keeps it in a
:class:`DuplicateStore` in one of two states:

* ``"in_progress"``: claimed by a worker that is running ``on_message`` on it, for a short,
  bounded time (``in_progress_ttl``, 30 s): a retry meanwhile must be neither processed again
  nor acknowledged (the first try may still fail), so it is answered 503 and WeChat tries again;
* ``"done"``: ``on_message`` succeeded; remembered for ``ttl`` (300 s): a retry is answered
  ``success``.

A failed try releases its key, so that WeChat's next retry is processed. Claiming is atomic, so
that two concurrent tries cannot both pass; Redis implements the three operations with
``SET key in_progress NX PX``, ``SET key done PX`` and ``DEL``. The stores follow the SDK's
one store convention (``wechat_kf._stores``): memory by default, Redis shared.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Literal, Protocol, TypeAlias

import anyio

from wechat_kf._errors import ValidationError
from wechat_kf._stores import ExpiringMap
from wechat_kf.callback._defaults import (
    DEDUPE_IN_PROGRESS_TTL,
    DEDUPE_MAX_ENTRIES,
    DEDUPE_NAMESPACE,
    DEDUPE_TTL,
)
from wechat_kf.callback._messages import Event, Incoming, UserMessage

__all__ = [
    "Deduplicator",
    "DuplicateState",
    "DuplicateStore",
    "MemoryDuplicateStore",
    "dedupe_key",
]

#: What a :class:`DuplicateStore` holds for a key: a push being handled, or handled.
DuplicateState: TypeAlias = Literal["in_progress", "done"]


class DuplicateStore(Protocol):
    """Where push keys live, each ``"in_progress"`` or ``"done"``; :meth:`seen` must be atomic.

    A Redis implementation (:class:`~wechat_kf.callback.RedisDuplicateStore` is this one)::

        async def seen(self, key: str, ttl: float) -> DuplicateState | None:
            px = max(1, math.ceil(ttl * 1000))
            if await redis.set(key, b"in_progress", nx=True, px=px):
                return None
            return "done" if await redis.get(key) == b"done" else "in_progress"

        async def mark_done(self, key: str, ttl: float) -> None:
            await redis.set(key, b"done", px=max(1, math.ceil(ttl * 1000)))

        async def forget(self, key: str) -> None:
            await redis.delete(key)
    """

    async def seen(self, key: str, ttl: float) -> DuplicateState | None:
        """Claim ``key``: mark it ``"in_progress"`` for ``ttl`` seconds unless it is marked.

        Return ``None`` when this call claimed it, else the state it holds (``"in_progress"``
        or ``"done"``). Claiming is one atomic step: of concurrent calls with the same key,
        exactly one returns ``None``. An already-marked key keeps its state and its expiry.
        Reading the state of a key this call did not claim may be a second step: if the key
        vanishes in between, answer ``"in_progress"`` (WeChat then simply retries).
        """

    async def mark_done(self, key: str, ttl: float) -> None:
        """Mark ``key`` ``"done"`` for ``ttl`` seconds from now, whatever it held before.

        Called once ``on_message`` succeeded; replaces the short in-progress expiry.
        """

    async def forget(self, key: str) -> None:
        """Unmark ``key`` (processing failed: let WeChat's retry through). No error if absent."""


class MemoryDuplicateStore:
    """An in-process :class:`DuplicateStore`: bounded, expiring, safe across tasks and threads.

    At most ``max_entries`` keys are kept; beyond that the oldest are dropped first (an early
    drop can only let a late retry through, never refuse a new push). Expired keys are swept
    as new ones arrive. Fits a single process; with several workers use a shared store (Redis).
    """

    def __init__(
        self,
        *,
        max_entries: int = DEDUPE_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: ExpiringMap[str, DuplicateState] = ExpiringMap(
            max_entries=max_entries, clock=clock
        )

    def __len__(self) -> int:
        return len(self._entries)

    async def seen(self, key: str, ttl: float) -> DuplicateState | None:
        """Claim ``key`` for ``ttl`` seconds; ``None`` if claimed now, else its state."""
        return self._entries.setdefault(key, "in_progress", ttl)

    async def mark_done(self, key: str, ttl: float) -> None:
        """Mark ``key`` done for ``ttl`` seconds from now."""
        self._entries.set(key, "done", ttl)

    async def forget(self, key: str) -> None:
        """Unmark ``key``."""
        self._entries.pop(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._entries)} keys)"


def dedupe_key(incoming: Incoming) -> str:
    """The key identifying a push and its retries.

    WeChat's advice: ``MsgId`` for messages, ``FromUserName`` + ``CreateTime`` for events.
    The account (``ToUserName``) is included so one store can serve several accounts, and an
    event's type so two different events of one user in the same second stay distinct.
    """
    if isinstance(incoming, UserMessage):
        return f"{incoming.to_user}:msg:{incoming.msg_id}"
    msg_id = incoming.raw.get("MsgId", "").strip()
    if msg_id:
        return f"{incoming.to_user}:msg:{msg_id}"
    create_time = incoming.raw.get("CreateTime", "").strip()
    kind = incoming.event if isinstance(incoming, Event) else incoming.msg_type
    return f"{incoming.to_user}:{incoming.from_user}:{create_time}:{kind}"


def _seconds(field: str, value: float) -> float:
    if isinstance(value, bool) or not (
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    ):
        raise ValidationError(field, "must be a positive number of seconds", value)
    return float(value)


class Deduplicator:
    """Tell a new push from a retry of one being handled or already handled.

    ``store`` defaults to a :class:`MemoryDuplicateStore`. ``ttl`` is how long a handled push
    is remembered, ``in_progress_ttl`` how long a push being handled stays claimed (bounded:
    a worker that crashed mid-push blocks its retries for that long at most), both in seconds;
    ``namespace`` prefixes every key in the store.
    """

    def __init__(
        self,
        store: DuplicateStore | None = None,
        *,
        ttl: float = DEDUPE_TTL,
        in_progress_ttl: float = DEDUPE_IN_PROGRESS_TTL,
        namespace: str = DEDUPE_NAMESPACE,
    ) -> None:
        self.ttl: float = _seconds("ttl", ttl)
        self.in_progress_ttl: float = _seconds("in_progress_ttl", in_progress_ttl)
        self.store: DuplicateStore = store if store is not None else MemoryDuplicateStore()
        self.namespace = namespace

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(store={self.store!r}, ttl={self.ttl:g}, "
            f"in_progress_ttl={self.in_progress_ttl:g})"
        )

    def _key(self, incoming: Incoming) -> str:
        return self.namespace + dedupe_key(incoming)

    async def claim(self, incoming: Incoming) -> DuplicateState | None:
        """Claim ``incoming`` for processing: ``None`` if it is new (now ``"in_progress"``).

        Otherwise its state: ``"in_progress"`` (another try is being handled: do not process,
        do not acknowledge) or ``"done"`` (handled: acknowledge with ``success``).
        """
        return await self.store.seen(self._key(incoming), self.in_progress_ttl)

    async def mark_done(self, incoming: Incoming) -> None:
        """Record that ``incoming`` was handled: its retries get ``success`` for ``ttl`` s.

        Runs shielded from cancellation, like :meth:`forget`.
        """
        with anyio.CancelScope(shield=True):
            await self.store.mark_done(self._key(incoming), self.ttl)

    async def forget(self, incoming: Incoming) -> None:
        """Release ``incoming`` so that WeChat's next retry is processed (handling failed).

        Runs shielded from cancellation: a cancelled handler still releases its key.
        """
        with anyio.CancelScope(shield=True):
            await self.store.forget(self._key(incoming))
