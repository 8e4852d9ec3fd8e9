"""``wx.message``: send customer-service messages (客服消息) and the typing state."""

from __future__ import annotations

from typing import Final

from wechat_kf import _validation as check
from wechat_kf._pipeline import Endpoint
from wechat_kf._resource import APIResource
from wechat_kf._retry import RetryMode
from wechat_kf.messages import Message, envelope

__all__ = ["MessageAPI"]

SEND: Final = Endpoint("POST", "/cgi-bin/message/custom/send", RetryMode.WRITE)
_TYPING: Final = Endpoint("POST", "/cgi-bin/message/custom/typing", RetryMode.WRITE)


class MessageAPI(APIResource):
    """Messages to users who wrote within the last 48 hours (5 messages per user message)."""

    __slots__ = ()

    async def send(
        self,
        openid: str,
        message: Message,
        *,
        kf_account: str | None = None,
        ai_generated: bool = False,
    ) -> None:
        """Send ``message`` to the user ``openid``.

        ``kf_account`` sends as that agent (its avatar and nickname show). ``ai_generated``
        marks AI-generated content (``aimsgcontext.is_ai_msg = 1``). Outside the user's
        response window WeChat answers :class:`~wechat_kf.ResponseWindowError` (45015), past the
        window's quota :class:`~wechat_kf.ResponseQuotaError` (45047). A send is retried only
        when it provably never left or WeChat said busy (-1): never sent twice by the SDK.
        """
        check.openid(openid)
        if kf_account is not None:
            check.kf_account(kf_account)
        body = envelope(openid, message, kf_account=kf_account, ai_generated=ai_generated)
        await self._pipeline.call(SEND, json=body)

    async def typing(self, openid: str) -> None:
        """Show "typing..." to the user (needs an exchange within 30 s; lasts 15 s)."""
        await self._typing(openid, "Typing")

    async def cancel_typing(self, openid: str) -> None:
        """Stop showing "typing..." to the user."""
        await self._typing(openid, "CancelTyping")

    async def _typing(self, openid: str, command: str) -> None:
        body = {"touser": check.openid(openid), "command": command}
        await self._pipeline.call(_TYPING, json=body)
