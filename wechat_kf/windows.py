"""``wx.windows``: who can still be messaged, how many times, until when.

WeChat lets an account message a user only inside a service window the user opened (see
:data:`~wechat_kf.WINDOW_RULES`: 5 messages in 48 h after a user message, 3 in 1 minute after a
menu click, follow or QR scan). The client keeps a ledger of them (one per
:class:`~wechat_kf.AsyncWeChat`, in its ``window_store``), fed by the pushes that pass the
callback endpoint (``CallbackEndpoint(..., windows=wx.windows)``), by :meth:`WindowsAPI.opened`,
and by every send's answer. Bulk sends use it when asked::

    notice = Text(content="Sale ends tonight")
    report = await wx.message.send_many(wx.windows.reachable(), notice, skip_unreachable=True)
    print(report.counts)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING

from wechat_kf._window_ledger import WindowLedger, WindowStatus
from wechat_kf._window_rules import Interaction, WindowRule

if TYPE_CHECKING:
    from wechat_kf.callback._messages import Incoming

__all__ = ["WindowsAPI"]


class WindowsAPI:
    """The service-window ledger of a client: ask it, feed it, stream who is reachable."""

    __slots__ = ("_ledger",)

    def __init__(self, ledger: WindowLedger) -> None:
        self._ledger = ledger

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    @property
    def rules(self) -> tuple[WindowRule, ...]:
        """The rules the ledger applies (:data:`~wechat_kf.WINDOW_RULES` by default)."""
        return self._ledger.rules

    async def get(self, openid: str) -> WindowStatus:
        """What the ledger knows of ``openid`` now: reachable, messages left, until when.

        ``status.reachable`` is ``None`` for a user the ledger knows nothing about.
        """
        return await self._ledger.status(openid)

    async def opened(
        self,
        openid: str,
        *,
        at: datetime | float | None = None,
        kind: Interaction | str = Interaction.MESSAGE,
    ) -> bool:
        """Record by hand that ``openid`` interacted at ``at`` (aware ``datetime`` or Unix
        seconds; default now): for accounts whose pushes enter elsewhere.

        ``kind`` is an :class:`~wechat_kf.Interaction` (a user message by default). Returns
        whether it opened or renewed a window; the same interaction recorded twice counts once.
        """
        return await self._ledger.opened(openid, kind=kind, at=at)

    async def observe(self, incoming: Incoming) -> bool:
        """Record a parsed push if it opens a window (what the callback endpoint calls)."""
        return await self._ledger.observe(incoming)

    def reachable(self) -> AsyncIterator[str]:
        """The openids reachable now, streamed from the store (never all loaded at once).

        Pass it straight to ``send_many(..., skip_unreachable=True)``: the send reserves each
        message, so a user who ran out meanwhile is skipped, not refused.
        """
        return self._ledger.reachable()

    async def forget(self, openid: str) -> None:
        """Forget what the ledger knows of ``openid`` (unknown again: sent as usual)."""
        await self._ledger.forget(openid)
