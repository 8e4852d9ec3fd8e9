"""Which event loop a client belongs to: the one its first call ran in.

A client's connections, and the locks of its token manager, belong to the event loop that made
them. Used from another loop (``asyncio.run()`` called twice with one client made at import
time), they fail in ways that say nothing useful (``RuntimeError: Event loop is closed``), and an
aiohttp session of the dead loop is reported "Unclosed client session". :class:`LoopGuard`
binds a client to the loop of its first call and refuses any other with
:class:`~wechat_kf.EventLoopChangedError` before anything is sent.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final

import sniffio

from wechat_kf._errors import EventLoopChangedError

__all__ = ["LoopGuard", "running_loop"]

#: Stands for the loop of an async library whose loops the guard cannot tell apart.
_UNKNOWN_LOOP: Final = object()


def running_loop() -> object:
    """The running event loop: the asyncio loop, or trio's token for this ``trio.run``."""
    loop = asyncio._get_running_loop()
    if loop is not None:
        return loop
    if sniffio.current_async_library() == "trio":
        trio: Any = sys.modules["trio"]
        return trio.lowlevel.current_trio_token()
    return _UNKNOWN_LOOP


class LoopGuard:
    """Binds a client to the event loop of its first call; shared by all its pipelines.

    ``release`` (the SDK's own HTTP client) is awaited when another loop shows up: it lets go of
    connections whose loop is closed, so nothing is reported unclosed later.
    """

    __slots__ = ("_loop", "_release")

    def __init__(self, release: Callable[[], Awaitable[None]] | None = None) -> None:
        self._loop: Callable[[], object] | None = None
        self._release = release

    def matches(self) -> bool:
        """Whether the running loop is the client's (binding it at the first call)."""
        current = running_loop()
        bound = self._loop
        if bound is None:
            try:
                self._loop = weakref.ref(current)
            except TypeError:  # a loop type without weak references: keep it alive
                self._loop = lambda: current
            return True
        return bound() is current

    async def refuse(self, method: str, path: str) -> None:
        """Raise :class:`EventLoopChangedError` (after releasing a dead loop's connections)."""
        if self._release is not None:
            await self._release()
        raise EventLoopChangedError(
            f"{method} {path}: this client made its first call in another event loop and "
            "cannot be used from this one (its connections and locks belong to that loop); "
            "nothing was sent. Create one client per event loop, inside it (async with "
            "AsyncWeChat(...) in the coroutine that asyncio.run runs), and close it there. "
            "Typical cause: asyncio.run() called more than once with one client made at "
            "import time (Django's async_to_sync, Celery tasks, cron scripts)"
        )
