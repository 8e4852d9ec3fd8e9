"""The one convention every pluggable store of the SDK follows.

A concern that keeps state beyond one call (access tokens, the pushes already handled, uploaded
media, users' service windows) gets:

* a small ``Protocol`` of async methods naming what the concern needs, each atomic in the
  backend, documented where the concern lives (``TokenStore`` in ``_tokens.py``,
  ``DuplicateStore`` in ``callback/_dedupe.py``, ``MediaIdStore`` in ``_media_ids.py``,
  ``WindowStore`` in ``_window_store.py``);
* a memory implementation, the default: in this process, bounded, thread-safe, with an
  injectable ``clock`` for tests; :class:`ExpiringMap` is the building block of those whose
  entries expire;
* a Redis implementation (extra ``wechat_kf[redis]``) on :class:`wechat_kf._redis.RedisStore`,
  which fixes the connection conventions once: your ``redis.asyncio`` client (or
  ``from_url``), keys ``{prefix}{scope}:kind`` with the scope as the Cluster hash tag, every
  operation bounded by ``timeout`` and failing with the store's typed error (a
  :class:`~wechat_kf.StoreError` subclass), asyncio only;
* a contract test suite any implementation can run (``wechat_kf.testing.store_contract`` for
  token stores, ``wechat_kf.testing.duplicate_store_contract`` for duplicate stores,
  ``wechat_kf.testing.media_store_contract`` for media-id stores,
  ``wechat_kf.testing.window_store_contract`` for window stores).

One Redis client can serve every store of an application: ``RedisTokenStore(client)``,
``RedisDuplicateStore(client)``, ``RedisMediaIdStore(client)`` and ``RedisWindowStore(client)``
share it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from wechat_kf._errors import StoreError, ValidationError

__all__ = ["Clock", "ExpiringMap", "StoreError"]

K = TypeVar("K")
V = TypeVar("V")

#: What memory stores read the time from: seconds (``time.monotonic`` unless said otherwise).
Clock = Callable[[], float]


class ExpiringMap(Generic[K, V]):
    """A bounded, thread-safe mapping whose entries expire: the core of the memory stores.

    Each entry lives ``ttl`` seconds from its last write. At most ``max_entries`` are kept;
    past that the entry written longest ago goes first. Expired entries are swept as new ones
    are written (amortised O(1): the sweep stops at the first live entry in write order, and
    every lookup checks expiry itself, so an entry with a long ``ttl`` sheltering shorter ones
    behind it is never a correctness issue).
    """

    __slots__ = ("_clock", "_entries", "_lock", "_max_entries")

    def __init__(self, *, max_entries: int, clock: Clock = time.monotonic) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValidationError("max_entries", "must be a positive int", max_entries)
        self._max_entries = max_entries
        self._clock = clock
        # key -> (expiry, value), in the order of the last write (roughly expiry order)
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def lock(self) -> threading.Lock:
        """The mutex guarding the map: hold it to make several operations one atomic step."""
        return self._lock

    def now(self) -> float:
        """The map's clock, now."""
        return self._clock()

    def __len__(self) -> int:
        with self._lock:
            self._sweep(self._clock())
            return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value of ``key``, or ``None``."""
        with self._lock:
            return self.get_locked(key, self._clock())

    def get_locked(self, key: K, now: float) -> V | None:
        """:meth:`get` for a caller already holding :attr:`lock`."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def expiry(self, key: K) -> float | None:
        """When ``key`` expires on the map's clock, or ``None`` if it holds nothing live."""
        with self._lock:
            entry = self._entries.get(key)
            return entry[0] if entry is not None and entry[0] > self._clock() else None

    def expiry_locked(self, key: K) -> float:
        """When ``key``'s entry expires on the map's clock (it must exist), for a caller
        holding :attr:`lock`: rewrite an entry with ``set_locked(key, value, expiry)`` to keep
        its lifetime."""
        return self._entries[key][0]

    def set(self, key: K, value: V, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds from now."""
        with self._lock:
            self.set_locked(key, value, self._clock() + ttl)

    def set_locked(self, key: K, value: V, expiry: float) -> None:
        """:meth:`set` (until ``expiry`` on the map's clock) for a caller holding :attr:`lock`."""
        self._sweep(self._clock())
        self._entries.pop(key, None)
        self._entries[key] = (expiry, value)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)  # pragma: no mutate (None is False too)

    def setdefault(self, key: K, value: V, ttl: float) -> V | None:
        """Store ``value`` unless ``key`` holds a live value; return that value, or ``None``.

        One atomic step: of concurrent calls for one key, exactly one returns ``None``.
        """
        with self._lock:
            now = self._clock()
            current = self.get_locked(key, now)
            if current is not None:
                return current
            self.set_locked(key, value, now + ttl)
            return None

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its live value, or ``None``."""
        with self._lock:
            return self.pop_locked(key, self._clock())

    def pop_locked(self, key: K, now: float) -> V | None:
        """:meth:`pop` for a caller already holding :attr:`lock`."""
        entry = self._entries.pop(key, None)
        return entry[1] if entry is not None and entry[0] > now else None

    def items(self) -> Iterator[tuple[K, V]]:
        """The live entries, oldest write first (a snapshot: safe to modify the map meanwhile)."""
        with self._lock:
            now = self._clock()
            self._sweep(now)
            snapshot = [(k, value) for k, (expiry, value) in self._entries.items() if expiry > now]
        return iter(snapshot)

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._entries.clear()

    def _sweep(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expiry, _) = next(iter(entries.items()))
            if expiry > now:
                break  # pragma: no mutate (return: the loop is the last statement)
            del entries[key]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(entries={len(self)}, max_entries={self._max_entries})"
