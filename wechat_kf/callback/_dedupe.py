"""Duplicate detection: WeChat retries a push 3 times, 5 s apart, when no answer came in 5 s.

:class:`Deduplicator` turns a push into its key (:func:`dedupe_key`) and asks a
:class:`DuplicateStore` whether the key was already seen. The store's one operation is
"mark, and tell whether it was already marked", atomically, so that two concurrent retries
cannot both pass; Redis implements it with one ``SET key 1 NX PX ttl_ms``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import anyio

from wechat_kf._errors import ValidationError
from wechat_kf.callback._defaults import DEDUPE_MAX_ENTRIES, DEDUPE_NAMESPACE, DEDUPE_TTL
from wechat_kf.callback._messages import Event, Incoming, UserMessage

__all__ = ["Deduplicator", "DuplicateStore", "MemoryDuplicateStore", "dedupe_key"]


class DuplicateStore(Protocol):
    """Where seen push keys live. Implementations must make :meth:`seen` atomic.

    A Redis implementation::

        async def seen(self, key: str, ttl: float) -> bool:
            return not await redis.set(key, b"1", nx=True, px=max(1, math.ceil(ttl * 1000)))

        async def forget(self, key: str) -> None:
            await redis.delete(key)
    """

    async def seen(self, key: str, ttl: float) -> bool:
        """Mark ``key`` for ``ttl`` seconds; return ``True`` if it was already marked.

        Marking and checking are one atomic step: of two concurrent calls with the same key,
        exactly one returns ``False``. An already-marked key keeps its first expiry.
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
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValidationError("max_entries", "must be a positive int", max_entries)
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._sweep(self._clock())
            return len(self._expiry)

    async def seen(self, key: str, ttl: float) -> bool:
        """Mark ``key`` for ``ttl`` seconds; return ``True`` if it was already marked."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            expiry = self._expiry.get(key)
            if expiry is not None and expiry > now:
                return True
            self._expiry.pop(key, None)
            self._expiry[key] = now + ttl
            while len(self._expiry) > self._max_entries:
                self._expiry.popitem(last=False)
            return False

    async def forget(self, key: str) -> None:
        """Unmark ``key``."""
        with self._lock:
            self._expiry.pop(key, None)

    def _sweep(self, now: float) -> None:
        # Oldest first: stop at the first live entry (amortised O(1) per call). An entry with
        # a long ttl can shelter shorter ones behind it; lookups still check expiry.
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[key]


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


class Deduplicator:
    """Tell whether a push is a retry of one already handled.

    ``store`` defaults to a :class:`MemoryDuplicateStore`; ``ttl`` is how long a push is
    remembered (seconds); ``namespace`` prefixes every key in the store.
    """

    def __init__(
        self,
        store: DuplicateStore | None = None,
        *,
        ttl: float = DEDUPE_TTL,
        namespace: str = DEDUPE_NAMESPACE,
    ) -> None:
        if isinstance(ttl, bool) or not (
            isinstance(ttl, (int, float)) and math.isfinite(ttl) and ttl > 0
        ):
            raise ValidationError("ttl", "must be a positive number of seconds", ttl)
        self.store: DuplicateStore = store if store is not None else MemoryDuplicateStore()
        self.ttl = float(ttl)
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"{type(self).__name__}(store={self.store!r}, ttl={self.ttl:g})"

    async def is_duplicate(self, incoming: Incoming) -> bool:
        """Mark ``incoming`` as seen; return ``True`` if it (or an earlier try) already was."""
        return await self.store.seen(self.namespace + dedupe_key(incoming), self.ttl)

    async def forget(self, incoming: Incoming) -> None:
        """Unmark ``incoming`` so that WeChat's next retry is processed (handling failed).

        Runs shielded from cancellation: a cancelled handler still releases its key.
        """
        with anyio.CancelScope(shield=True):
            await self.store.forget(self.namespace + dedupe_key(incoming))
